// Copyright 2026 The libcdp Authors.
//
// Drives cdp-server's web console in Debian's chromium (headless, through playwright-core) and prints what it saw
// as one JSON object; tests/server/test_console.py starts the server, seeds the data and checks the answers.
//
//   node tests/console/drive.mjs '{"url": "http://127.0.0.1:PORT", "key": "...", "email": "...", "segment": "..."}'

import { chromium } from 'playwright-core';

const plan = JSON.parse(process.argv[2]);
const seen = { consoleErrors: [] };
var keySteps = true;  // while no key or a wrong one is in use, the browser logs the API's 401 answers
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (err) => seen.consoleErrors.push('pageerror: ' + err.message));
  page.on('console', (msg) => {
    // A 401 or 403 answer is logged by the browser as a failed resource: expected in the key steps below.
    // With a restricted key, its refusals (403) are expected too.
    const expected = plan.restricted ? /status of 40[134]/ : /status of 40[14]/;
    if (plan.changes && msg.type() === 'error' && /status of 4\d\d/.test(msg.text())) {
      // The changes' steps provoke refusals on purpose: the test checks that these are exactly those.
      seen.refusals = [...(seen.refusals || []), msg.text().replace(/.*status of (\d+).*/, '$1') + ' ' +
                       new URL(msg.location().url).pathname];
    } else if (msg.type() === 'error' && !(keySteps && expected.test(msg.text()))) {
      seen.consoleErrors.push(msg.text() + ' ' + (msg.location().url || ''));
    }
  });
  const banner = async () => ((await page.locator('#banner').isVisible()) ? page.locator('#banner').innerText() : '');
  // Until the view the fragment names is rendered (app.js sets #view's data-ready to it when done).
  const settle = async () => {
    await page.waitForFunction(() => {
      const view = document.querySelector('#view');
      return view && view.dataset.ready === (location.hash || '#/overview');
    });
  };

  await run(page, banner, settle);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen) + '\n');

// The steps: the restricted key's, the changes', or the whole tour.
async function run(page, banner, settle) {
  if (plan.changes) return changes(page, banner, settle);
  if (plan.restricted) {  // a key whose role may not read the audit log nor personal fields
    // Given by a link carrying the key in its fragment (as cdp-server prints for a key it made up): opened in a new
    // tab, and in a tab already showing the console (only the fragment changes: no reload).
    const other = await browser.newPage();  // a tab of its own (its own session storage)
    await other.goto(plan.url + '/console/#key=' + encodeURIComponent(plan.key));
    await other.waitForFunction(() => document.querySelector('#principal').innerText !== '');
    seen.principalNewTab = await other.locator('#principal').innerText();
    seen.hashAfterKeyLink = await other.evaluate(() => location.hash);
    await other.close();
    await page.goto(plan.url + '/console/#/overview');
    await settle();
    seen.bannerBeforeKeyLink = await banner();
    await page.evaluate((key) => { location.hash = '#key=' + encodeURIComponent(key); }, plan.key);
    await page.waitForFunction(() => document.querySelector('#principal').innerText !== '');
    seen.principal = await page.locator('#principal').innerText();
    seen.hashAfterKeyLinkSameTab = await page.evaluate(() => location.hash);
    await settle();
    // The Privacy view: what this key may read, and a refusal in place of each section it may not.
    await page.goto(plan.url + '/console/#/privacy');
    await settle();
    seen.privacyText = await page.locator('#view').innerText();
    await page.goto(plan.url + '/console/#/audit');
    await settle();
    seen.auditBanner = await banner();
    await page.goto(plan.url + '/console/#/profile/' + encodeURIComponent(plan.profileId));
    await settle();
    seen.profileBanner = await banner();
    seen.profileText = await page.locator('#view').innerText();
    seen.timeline = await page.locator('#timeline').innerText();
    return;
  }

  // No key: the console loads, the API refuses.
  await page.goto(plan.url + '/');
  seen.redirectedTo = new URL(page.url()).pathname;
  await settle();
  seen.bannerWithoutKey = await banner();

  // A wrong key, then the right one.
  await page.fill('#api-key', 'not-the-key');
  await page.click('#key-form button');
  await settle();
  seen.bannerWithWrongKey = await banner();
  await page.fill('#api-key', plan.key);
  await page.click('#key-form button');
  await page.waitForFunction(() => document.querySelector('#view .card') !== null);
  await settle();
  keySteps = false;
  seen.bannerWithKey = await banner();
  await page.waitForFunction(() => document.querySelector('#principal').innerText !== '');
  seen.principal = await page.locator('#principal').innerText();
  seen.overviewCards = await page.locator('.card').allInnerTexts();

  // Search profiles by email, open the one found.
  await page.click('nav a[data-view="profiles"]');
  await settle();
  await page.fill('#search-field', 'externalIds.email');
  await page.selectOption('#search-op', '=');
  await page.fill('#search-value', plan.email);
  await page.click('#search-form button[type="submit"]');
  await page.waitForFunction((email) => location.hash.includes(encodeURIComponent(email)), plan.email);
  await settle();
  seen.searchHeading = await page.locator('#view h1').innerText();
  seen.searchCount = await page.locator('#result-count').innerText();
  seen.searchRows = await page.locator('#view tbody tr').allInnerTexts();
  await page.locator('#view tbody tr').first().click();
  await page.waitForFunction(() => location.hash.startsWith('#/profile/'));
  await settle();
  seen.profileHash = decodeURIComponent(new URL(page.url()).hash);
  seen.profileTitle = await page.locator('#profile-title').innerText();
  seen.identifiers = await page.locator('#identifiers').innerText();
  seen.timeline = await page.locator('#timeline tbody tr').allInnerTexts();
  seen.imagesInView = await page.locator('#view img').count();
  seen.xssRan = await page.evaluate(() => window.__xss === 1);
  await page.waitForFunction(() => document.querySelector('#consent-history p').innerText !== '');
  seen.consentHistory = await page.locator('#consent-history tbody tr').allInnerTexts();
  const profileHash = new URL(page.url()).hash;

  // An access request: the export is downloaded and summarised.
  const download = page.waitForEvent('download');
  await page.click('#export-button');
  seen.exportFile = (await download).suggestedFilename();
  await page.waitForFunction(() => document.querySelector('#privacy-result').innerText !== '');
  seen.exportSummary = await page.locator('#privacy-result').innerText();

  // Text searches ignore case unless "exact case" is ticked: the last name is stored "Lovelace".
  await page.goto(plan.url + '/console/#/profiles?field=attributes.lastName&op=%3D&value=lovelace');
  await settle();
  seen.caseBlindCount = await page.locator('#result-count').innerText();
  await page.check('#search-case');
  await page.click('#search-form button[type="submit"]');
  await page.waitForFunction(() => location.hash.includes('case=exact'));
  await settle();
  seen.exactCaseCount = await page.locator('#result-count').innerText();

  // The segment and its members.
  await page.click('nav a[data-view="segments"]');
  await settle();
  seen.segments = await page.locator('#view tbody tr').allInnerTexts();
  await page.locator('#view tbody tr', { hasText: plan.segment }).first().click();
  await page.waitForFunction(() => location.hash.startsWith('#/segment/'));
  await settle();
  seen.segmentHeading = await page.locator('#view h1').innerText();
  seen.segmentMembers = await page.locator('#view tbody tr').allInnerTexts();

  // Analytics: the default funnel and attribution, then a two-step funnel from the form.
  await page.click('nav a[data-view="analytics"]');
  await settle();
  seen.funnel = await page.locator('#funnel tbody tr').allInnerTexts();
  seen.attributionSummary = await page.locator('#attribution p').innerText();
  seen.attribution = await page.locator('#attribution tbody tr').allInnerTexts();
  await page.fill('#funnel-steps', 'page_view, purchase');
  await page.selectOption('#attribution-model', 'linear');
  await page.click('#analytics-form button[type="submit"]');
  await page.waitForFunction(() => location.hash.includes('model=linear'));
  await settle();
  seen.funnel2 = await page.locator('#funnel tbody tr').allInnerTexts();
  seen.cohorts = await page.locator('#cohorts tbody tr').allInnerTexts();
  seen.attributionSummary2 = await page.locator('#attribution p').innerText();

  // The audit log names what the console did, and its chain verifies.
  await page.click('nav a[data-view="audit"]');
  await settle();
  seen.auditRows = await page.locator('#view tbody tr').allInnerTexts();
  await page.click('#verify-button');
  await page.waitForFunction(() => document.querySelector('#verify-result').innerText !== '');
  seen.verify = await page.locator('#verify-result').innerText();

  // Erasure, after a confirmation: declined first (nothing happens), then accepted.
  await page.goto(plan.url + '/console/' + profileHash);
  await settle();
  page.once('dialog', (d) => d.dismiss());
  await page.click('#erase-button');
  await page.waitForTimeout(300);
  seen.afterDismiss = await page.locator('#profile-title').count();
  page.once('dialog', (d) => {
    seen.confirmText = d.message();
    d.accept();
  });
  await page.click('#erase-button');
  await page.waitForSelector('#erased');
  seen.erased = await page.locator('#erased').innerText();
  keySteps = true;  // from here the erased profile's 404 is expected
  await page.reload();  // the same fragment: a load, not a hash change
  await settle();
  seen.bannerAfterErasure = await banner();
}


// Changes through the console: a profile patched (and a bad patch refused), a consent statement, a merge and its
// undoing, a segment counted, created and deleted, duplicates found and their proposals accepted and rejected.
async function changes(page, banner, settle) {
  // Clicks what makes a change, the last change's notice cleared first (a notice is waited for below).
  const act = async (target) => {
    await page.evaluate(() => {
      const n = document.querySelector('#notice');
      n.hidden = true;
      n.textContent = '';
    });
    await (typeof target === 'string' ? page.click(target) : target.click());
  };
  const notice = async () => {
    await page.waitForSelector('#notice:not([hidden])');
    await settle();
    return page.locator('#notice').innerText();
  };
  // Each change's notice, after the view it re-rendered; dialogs (confirmations) accepted.
  page.on('dialog', (d) => {
    (seen.dialogs ||= []).push(d.message());
    d.accept();
  });
  await page.goto(plan.url + '/console/');
  await page.fill('#api-key', plan.key);
  await page.click('#key-form button');
  await settle();
  await page.goto(plan.url + '/console/#/profile/' + encodeURIComponent(plan.profileId));
  await settle();

  await page.fill('#patch-text', '{"attributes": {"city": "Oslo", "customFields": {"tier": "gold"}}}');
  await act('#patch-button');
  seen.patchNotice = await notice();
  seen.attributes = await page.locator('#attributes').innerText();

  await page.fill('#patch-text', '{"attributes": ');
  await page.click('#patch-button');
  await page.waitForSelector('#banner:not([hidden])');
  seen.badPatchBanner = await banner();
  seen.badPatchKept = await page.inputValue('#patch-text');
  await page.fill('#patch-text', '{"attributes": {"country": 7}}');
  await page.click('#patch-button');
  await page.waitForFunction(() => document.querySelector('#banner').innerText.includes('attributes.country'));
  seen.refusedPatchBanner = await banner();

  await page.fill('#consent-purpose', 'sms');
  await page.selectOption('#consent-choice', 'denied');
  await page.fill('#consent-policy', 'v9');
  await act('#consent-button');
  seen.consentNotice = await notice();
  seen.consent = await page.locator('#consent').innerText();
  await page.waitForFunction(() => document.querySelector('#consent-history p').innerText !== '');
  seen.consentHistory = await page.locator('#consent-history tbody tr').allInnerTexts();

  await page.fill('#merge-ids', plan.otherId);
  await page.fill('#merge-reason', 'same person, two emails');
  await act('#merge-button');
  seen.mergeNotice = await notice();
  seen.identifiersMerged = await page.locator('#identifiers').innerText();
  seen.merges = await page.locator('#merges tbody tr').allInnerTexts();
  await act('#merges .unmerge-button');
  seen.unmergeNotice = await notice();
  seen.identifiersUnmerged = await page.locator('#identifiers').innerText();
  seen.mergesAfter = await page.locator('#merges tbody tr').allInnerTexts();
  seen.unmergeButtons = await page.locator('#merges .unmerge-button').count();

  await page.goto(plan.url + '/console/#/segments');
  await settle();
  await page.fill('#segment-name', plan.segment);
  await page.fill('#segment-rule', '{"event": "purchase", "count": "many"}');
  await page.click('#estimate-button');
  await page.waitForSelector('#banner:not([hidden])');
  seen.badRuleBanner = await banner();
  await page.fill('#segment-rule', '{"event": "purchase"}');
  await page.click('#estimate-button');
  await page.waitForFunction(() => document.querySelector('#estimate-result').innerText !== '');
  seen.estimate = await page.locator('#estimate-result').innerText();
  await act('#create-segment-button');
  await page.waitForFunction(() => location.hash.startsWith('#/segment/'));
  seen.createNotice = await notice();
  seen.segmentSize = await page.locator('#segment-size').innerText();
  seen.segmentMembers = await page.locator('#view tbody tr').allInnerTexts();
  seen.segmentHash = new URL(page.url()).hash;
  // Its rule edited: counted, then saved.
  await page.fill('#edit-rule', '{"event": "page_view"}');
  await page.click('#edit-estimate-button');
  await page.waitForFunction(() => document.querySelector('#edit-estimate').innerText !== '');
  seen.editEstimate = await page.locator('#edit-estimate').innerText();
  await act('#save-rule-button');
  seen.saveNotice = await notice();
  seen.editedMembers = await page.locator('#view tbody tr').allInnerTexts();
  await act('#delete-segment');
  await page.waitForFunction(() => location.hash === '#/segments');
  seen.deleteNotice = await notice();
  seen.segmentsAfter = await page.locator('#view tbody tr').allInnerTexts();

  // A manual list: created, members added by id and by identifier, one removed; a failed change hides the notice.
  await page.fill('#segment-name', plan.segment + ' (manual)');
  await page.check('#segment-manual');
  await act('#create-segment-button');
  await page.waitForFunction(() => location.hash.startsWith('#/segment/'));
  seen.manualNotice = await notice();
  const manualId = decodeURIComponent(new URL(page.url()).hash.split('/')[2].split('?')[0]);
  await page.fill('#manual-items', plan.profileId + ', email:' + plan.otherEmail);
  await act('#add-members');
  seen.addNotice = await notice();
  seen.manualMembers = await page.locator('#view tbody tr').allInnerTexts();
  await page.fill('#manual-items', plan.profileId);
  await act('#remove-members');
  seen.removeNotice = await notice();
  seen.manualMembersAfter = await page.locator('#view tbody tr').allInnerTexts();
  await page.fill('#manual-items', '  ');
  await page.click('#add-members');
  await page.waitForSelector('#banner:not([hidden])');
  seen.emptyItemsBanner = await banner();
  seen.noticeAfterFailure = await page.locator('#notice').isVisible();

  // An audience of the manual list: created, its parts and members shown, then one restricted to email consent,
  // which the remaining member has not given, and both deleted.
  await page.click('nav a[data-view="audiences"]');
  await settle();
  await page.fill('#audience-name', plan.segment + ' audience');
  await page.fill('#audience-segments', manualId);
  await act('#create-audience-button');
  await page.waitForFunction(() => location.hash.startsWith('#/audience/'));
  seen.audienceNotice = await notice();
  seen.audienceSize = await page.locator('#audience-size').innerText();
  seen.audienceParts = await page.locator('#audience-parts .card').allInnerTexts();
  seen.audienceMembers = await page.locator('#view tbody tr').allInnerTexts();
  await page.click('nav a[data-view="audiences"]');
  await settle();
  await page.fill('#audience-name', plan.segment + ' emailable');
  await page.fill('#audience-segments', manualId);
  await page.fill('#audience-channel', 'email');
  await act('#create-audience-button');
  await page.waitForFunction(() => location.hash.startsWith('#/audience/'));
  seen.emailAudienceNotice = await notice();
  seen.emailAudienceParts = await page.locator('#audience-parts .card').allInnerTexts();
  await act('#delete-audience');
  await page.waitForFunction(() => location.hash === '#/audiences');
  seen.audienceDeleteNotice = await notice();
  seen.audiencesAfter = await page.locator('#view tbody tr').allInnerTexts();

  await page.click('nav a[data-view="identity"]');
  await settle();
  seen.identityCards = await page.locator('.card').allInnerTexts();
  seen.proposalsBefore = await page.locator('#proposals tbody tr').count();
  await act('#find-duplicates');
  seen.duplicatesNotice = await notice();
  seen.proposals = await page.locator('#proposals tbody tr').allInnerTexts();
  const first = page.locator('#proposals tbody tr').first();
  seen.accepted = await first.getAttribute('data-proposal');
  await act(first.locator('.accept-button'));
  seen.acceptNotice = await notice();
  const next = page.locator('#proposals tbody tr').first();
  seen.rejected = await next.getAttribute('data-proposal');
  await act(next.locator('.reject-button'));
  seen.rejectNotice = await notice();
  await page.selectOption('#proposal-status', 'rejected');
  await page.waitForFunction(() => location.hash.includes('status=rejected'));
  await settle();
  seen.rejectedList = await page.locator('#proposals tbody tr').allInnerTexts();

  // Privacy: the requests, a policy with a principal, a key issued for it and revoked, retention saved and run, a
  // suppression check.
  await page.click('nav a[data-view="privacy"]');
  await settle();
  seen.requestRows = await page.locator('#requests tbody tr').allInnerTexts();
  seen.requestCards = await page.locator('#requests .card').allInnerTexts();
  seen.accessText = await page.locator('#access').innerText();
  await page.fill('#policy-text', JSON.stringify({ roles: { viewer: { read: ['public'] } },
                                                   principals: { ops: { roles: ['viewer'] } } }));
  await act('#save-policy');
  seen.policyNotice = await notice();
  await page.fill('#key-principal', 'ops');
  await page.fill('#key-description', 'console test');
  await act('#issue-key');
  seen.keyNotice = await notice();
  seen.keyRows = await page.locator('#key-list tbody tr').allInnerTexts();
  await act(page.locator('#key-list tbody tr').first().locator('.revoke-button'));
  seen.revokeNotice = await notice();
  seen.keyRowsAfter = await page.locator('#key-list tbody tr').count();
  await page.fill('#retention-text', JSON.stringify({ policies: [{ name: 'ancient views', target: 'events',
                                                                   eventType: 'page_view', olderThan: '100y' }] }));
  await act('#save-retention');
  seen.retentionNotice = await notice();
  await act('#run-retention');
  seen.runNotice = await notice();
  seen.runRows = await page.locator('#retention-runs tbody tr').allInnerTexts();
  await page.selectOption('#suppression-type', 'email');
  await page.fill('#suppression-value', plan.otherEmail);
  await page.click('#suppression-check');
  await page.waitForFunction(() => document.querySelector('#suppression-result').textContent !== '');
  seen.suppressionResult = await page.locator('#suppression-result').innerText();
  await act('#suppression-lift');
  seen.liftNotice = await notice();
}
