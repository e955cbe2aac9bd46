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
    if (msg.type() === 'error' && !(keySteps && expected.test(msg.text()))) {
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

// The steps: the restricted key's, or the whole tour.
async function run(page, banner, settle) {
  if (plan.restricted) {  // a key whose role may not read the audit log nor personal fields
    await page.goto(plan.url + '/console/#/audit');
    await page.fill('#api-key', plan.key);
    await page.click('#key-form button');
    await page.waitForFunction(() => document.querySelector('#principal').innerText !== '');
    seen.principal = await page.locator('#principal').innerText();
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

