// Copyright 2026 The libcdp Authors.
//
// The libcdp web console (docs/console.md): a single page over cdp-server's REST API. It holds no logic of its own;
// it keeps the API key in sessionStorage (this tab only) and a view's search terms in the URL's fragment (the
// tab's history). Every value from the API is written with textContent, never as HTML, and the server's
// Content-Security-Policy allows only this script.
'use strict';

// A link of cdp-server's ("/console/#key=..." printed for a key it made up for the run) carries the key in the
// fragment, which the browser never sends: it is kept in this tab's sessionStorage and replaced in the address bar
// (and the tab's history entry) by the overview's fragment, at load and when such a link is opened in a tab
// already showing the console. Returns whether the fragment held a key.
function takeKeyFromFragment() {
  if (!location.hash.startsWith('#key=')) return false;
  let key = location.hash.slice('#key='.length);
  try {
    key = decodeURIComponent(key);
  } catch (e) {
    // not percent-encoded: taken as it is
  }
  sessionStorage.setItem('cdp-key', key.trim());
  history.replaceState(null, '', location.pathname + location.search + '#/overview');
  return true;
}
takeKeyFromFragment();
const state = { key: sessionStorage.getItem('cdp-key') || '' };
const view = document.getElementById('view');
const banner = document.getElementById('banner');

// ---- The API ---------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error ? body.error : {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || '';
    this.field = error.field || '';
  }
}

async function api(method, path, body) {
  const headers = {};
  if (state.key) headers.Authorization = 'Bearer ' + state.key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (e) {
    parsed = null;
  }
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

// ---- DOM helpers (text only) -----------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(value) {
  if (value === null || value === undefined) return '';
  // A list of plain values (a profile's emails, phones, devices, tags) reads as a list.
  if (Array.isArray(value) && value.every((v) => v === null || typeof v !== 'object')) return value.join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function get(obj, path) {
  let cur = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[part];
  }
  return cur;
}

function table(columns, rows, onRow) {
  const head = el('tr', {}, ...columns.map((c) => el('th', {}, c.label)));
  const body = rows.map((row) => {
    const tr = el('tr', onRow ? { class: 'link' } : {}, ...columns.map((c) => el('td', {}, text(c.value(row)))));
    if (onRow) tr.addEventListener('click', () => onRow(row));
    return tr;
  });
  return el('table', {}, el('thead', {}, head), el('tbody', {}, ...body));
}

// A <select> of `values` (shown through `label`), `chosen` selected.
function choices(attrs, values, chosen, label = (v) => v) {
  return el('select', attrs, ...values.map((v) => {
    const option = el('option', { value: v }, label(v));
    if (v === chosen) option.selected = true;
    return option;
  }));
}

function card(label, value) {
  return el('div', { class: 'card' }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, text(value)));
}

function showError(err) {
  banner.hidden = false;
  if (err instanceof ApiError && err.status === 401) {
    banner.textContent = 'The server needs a valid API key: enter it above.';
  } else if (err instanceof ApiError && err.status === 403) {
    banner.textContent = 'This key may not do that: ' + err.message;
  } else {
    banner.textContent = err.message + (err.field ? ` (${err.field})` : '');
  }
}

function clearError() {
  banner.hidden = true;
  banner.textContent = '';
}

// What a change did, shown once above the next view rendered (the change's view, shown again or another).
const notice = document.getElementById('notice');
let pendingNotice = '';

function notify(message) {
  pendingNotice = message;
}

// A JSON object typed into a text area; an Error saying what is wrong otherwise.
function parseObject(source, what) {
  if (source.trim() === '') throw new Error(`${what} is empty`);
  let value;
  try {
    value = JSON.parse(source);
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${what} must be a JSON object`);
  }
  return value;
}

// Runs a change the user asked for: one or more API calls. A refusal or bad input goes to the banner and leaves
// the view as it is (what was typed stays, to correct it).
async function change(action) {
  clearError();
  notice.hidden = true;  // a failed change must not sit beside the last one's success
  try {
    await action();
  } catch (err) {
    showError(err);
  }
}

function button(id, label, onClick, secondary) {
  const attrs = { type: 'button' };
  if (id) attrs.id = id;
  if (secondary) attrs.class = 'secondary';
  const b = el('button', attrs, label);
  b.addEventListener('click', () => change(onClick));
  return b;
}

function profileLink(id) {
  return el('a', { href: '#/profile/' + encodeURIComponent(id) }, id);
}

// ---- Views -------------------------------------------------------------------------------------------------------------

async function overview() {
  const o = await api('GET', '/api/cdp/analytics/overview');
  const money = (v) => (typeof v === 'number' ? v.toLocaleString(undefined, { maximumFractionDigits: 2 }) : text(v));
  const rate = get(o, 'profiles.multiIdentifierRate');
  const parts = [
    el('h1', {}, 'Overview'),
    el('div', { class: 'cards' },
      card('Profiles', get(o, 'profiles.total')),
      card('Identified', get(o, 'profiles.identified')),
      card('Anonymous', get(o, 'profiles.anonymous')),
      card('Identified with 2+ identifiers', typeof rate === 'number' ? (rate * 100).toFixed(1) + '%' : text(rate)),
      card('Active (30 days)', get(o, 'activeProfiles.monthly')),
      card('Orders (total)', get(o, 'orders.total')),
      card('Revenue (total)', money(get(o, 'revenue.total'))),
      card('Data quality', typeof get(o, 'dataQuality.score') === 'number'
        ? get(o, 'dataQuality.score').toFixed(1) : get(o, 'dataQuality.score'))),
  ];
  const byType = get(o, 'eventsByType.30d') || {};
  parts.push(el('h2', {}, 'Events of the last 30 days'));
  parts.push(table([{ label: 'type', value: (r) => r[0] }, { label: 'events', value: (r) => r[1] }],
                   Object.entries(byType)));
  const segments = o.segments || [];
  parts.push(el('h2', {}, 'Segments'));
  parts.push(table([{ label: 'name', value: (s) => s.name }, { label: 'size', value: (s) => s.size }], segments,
                   (s) => go('#/segment/' + encodeURIComponent(s.id))));
  return parts;
}

const OPERATORS = ['=', '!=', '>', '<', '>=', '<=', 'contains', 'starts_with', 'in', 'not_in', 'exists'];
const AS = ['auto', 'text', 'number', 'boolean'];

// A search value as the condition takes it: 'auto' sends numbers for > < >= <=, true or false for exists, and text
// otherwise (identifiers such as a customerId "12345" or a postal code "02139" are text); 'in' and 'not_in' take a
// comma-separated list.
function conditionValue(op, value, as) {
  const convert = (v) => {
    const kind = as === 'auto'
      ? (['>', '<', '>=', '<='].includes(op) ? 'number' : (op === 'exists' ? 'boolean' : 'text')) : as;
    if (kind === 'number') {
      const n = Number(v);
      if (v.trim() === '' || Number.isNaN(n)) throw new Error(`"${v}" is not a number`);
      return n;
    }
    if (kind === 'boolean') {
      if (v !== 'true' && v !== 'false') throw new Error(`"${v}" is not true or false`);
      return v === 'true';
    }
    return v;
  };
  if (op === 'in' || op === 'not_in') return value.split(',').map((s) => convert(s.trim()));
  return convert(value);
}

async function profiles(params) {
  const field = params.get('field') || '';
  const op = params.get('op') || '=';
  const value = params.get('value') || '';
  const as = AS.includes(params.get('as')) ? params.get('as') : 'auto';
  const exact = params.get('case') === 'exact';  // text compares without regard to case unless asked
  const cursor = params.get('cursor') || '';
  const form = el('form', { class: 'inline', id: 'search-form' },
    el('input', { id: 'search-field', placeholder: 'field, e.g. attributes.country', value: field }),
    choices({ id: 'search-op' }, OPERATORS, op),
    el('input', { id: 'search-value', placeholder: 'value', value }),
    choices({ id: 'search-as', title: 'how the value is sent' }, AS, as,
            (a) => (a === 'auto' ? 'as: auto' : 'as ' + a)),
    el('label', { title: 'compare text exactly, capitals included' },
       el('input', { id: 'search-case', type: 'checkbox', ...(exact ? { checked: '' } : {}) }), ' exact case'),
    el('button', { type: 'submit' }, 'Search'),
    el('span', { class: 'muted' }, 'or open a profile by id:'),
    el('input', { id: 'open-id', placeholder: 'profile id' }),
    el('button', { type: 'button', class: 'secondary', id: 'open-button' }, 'Open'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go('#/profiles' + query({ field: form.querySelector('#search-field').value.trim(),
                              op: form.querySelector('#search-op').value,
                              value: form.querySelector('#search-value').value,
                              as: form.querySelector('#search-as').value,
                              case: form.querySelector('#search-case').checked ? 'exact' : '' }));
  });
  form.querySelector('#open-button').addEventListener('click', () => {
    const id = form.querySelector('#open-id').value.trim();
    if (id) go('#/profile/' + encodeURIComponent(id));
  });
  const head = [el('h1', {}, 'Profiles'), form];
  let page;
  try {  // a refused search keeps the form, to correct it
    const body = { limit: 25 };
    if (field) {
      const condition = { field, operator: op, value: conditionValue(op, value, as) };
      if (!exact && !['>', '<', '>=', '<=', 'exists'].includes(op)) condition.ignoreCase = true;
      body.conditions = [condition];
    }
    if (cursor) body.cursor = cursor;
    page = await api('POST', '/api/cdp/profiles/search', body);
  } catch (err) {
    showError(err);
    return head;
  }
  const rows = page.items || [];
  const result = table([
    { label: 'id', value: (p) => p.id },
    { label: 'email', value: (p) => get(p, 'externalIds.email') || get(p, 'attributes.email') },
    { label: 'name', value: (p) => [get(p, 'attributes.firstName'), get(p, 'attributes.lastName')].filter(Boolean).join(' ') },
    { label: 'country', value: (p) => get(p, 'attributes.country') },
    { label: 'ltv', value: (p) => get(p, 'computed.ltv') },
    { label: 'last seen', value: (p) => get(p, 'computed.lastSeenDate') },
  ], rows, (p) => go('#/profile/' + encodeURIComponent(p.id)));
  const more = page.nextCursor
    ? el('button', { class: 'secondary', id: 'next-page',
                     onclick: () => go('#/profiles' + query({ field, op, value, as, case: exact ? 'exact' : '',
                                                             cursor: page.nextCursor })) },
         'Next page')
    : null;
  return [...head, el('p', { class: 'muted', id: 'result-count' }, `${rows.length} on this page`), result, more];
}

// An id as one path segment: "." and ".." would be resolved away by the browser (another resource).
function segmentOf(id) {
  if (id === '.' || id === '..' || id === '') throw new Error(`"${id}" cannot be opened here`);
  return encodeURIComponent(id);
}

// A section's answer, or the reason it has none (a refusal is shown where the section would be).
function settled(promise) {
  return promise.then((value) => ({ value }), (error) => ({ error }));
}

function unavailable(error) {
  return el('p', { class: 'bad' }, error instanceof ApiError && error.status === 403
    ? 'This key may not read this: ' + error.message : error.message);
}

async function profile(id) {
  const enc = segmentOf(id);
  const [p, timeline, sessions, identity] = await Promise.all([
    api('GET', `/api/cdp/profiles/${enc}`),
    settled(api('GET', `/api/cdp/profiles/${enc}/timeline${query({ limit: 50, order: 'desc' })}`)),
    settled(api('GET', `/api/cdp/profiles/${enc}/sessions`)),
    settled(api('GET', `/api/cdp/profiles/${enc}/identity`)),
  ]);
  const name = [get(p, 'attributes.firstName'), get(p, 'attributes.lastName')].filter(Boolean).join(' ');
  const parts = [el('h1', { id: 'profile-title' }, name || p.id), el('p', { class: 'muted' }, 'id ' + p.id)];
  const computed = p.computed || {};
  parts.push(el('div', { class: 'cards' },
    card('Lifetime value', computed.ltv), card('Orders', computed.purchaseCount), card('AOV', computed.aov),
    card('First seen', computed.firstSeenDate), card('Last seen', computed.lastSeenDate),
    card('Segments', (p.segments || []).length)));
  const kv = (obj) => table([{ label: 'field', value: (r) => r[0] }, { label: 'value', value: (r) => r[1] }],
                            Object.entries(obj || {}));
  parts.push(el('div', { class: 'grid' },
    el('section', { id: 'identifiers' }, el('h2', {}, 'Identifiers'), kv(p.externalIds)),
    el('section', { id: 'attributes' }, el('h2', {}, 'Attributes'), kv(p.attributes)),
    el('section', { id: 'consent' }, el('h2', {}, 'Consent'), kv(p.consent))));
  parts.push(el('h2', {}, 'Timeline (newest first)'));
  parts.push(el('div', { id: 'timeline' }, timeline.error ? unavailable(timeline.error) : table([
    { label: 'time', value: (e) => e.timestamp },
    { label: 'type', value: (e) => e.type + (e.name ? ': ' + e.name : '') },
    { label: 'source', value: (e) => e.source },
    { label: 'details', value: eventDetails },
  ], timeline.value.items || [])));
  parts.push(el('h2', {}, 'Sessions (the last 20, newest first)'));
  if (sessions.error) {
    parts.push(unavailable(sessions.error));
  } else {
    const list = Array.isArray(sessions.value) ? sessions.value : sessions.value.items || [];  // oldest first
    parts.push(table([
      { label: 'start', value: (s) => s.start || s.startedAt },
      { label: 'events', value: (s) => s.eventCount },
      { label: 'first page', value: (s) => s.firstPage },
      { label: 'utm source', value: (s) => s.utmSource || get(s, 'utm.source') },
      { label: 'device', value: (s) => s.deviceId },
      { label: 'user agent', value: (s) => s.userAgent },
    ], list.slice(-20).reverse()));
  }
  parts.push(el('h2', {}, 'Identity: merges'));
  parts.push(identity.error ? unavailable(identity.error) : mergesTable(identity.value.merges || []));
  parts.push(el('h2', {}, 'Consent history'));
  parts.push(consentHistory(p.id));
  parts.push(el('h2', {}, 'Change this profile'));
  parts.push(profileChanges(p.id));
  parts.push(el('h2', {}, 'Privacy requests'));
  parts.push(privacyActions(p.id));
  parts.push(el('h2', {}, 'Document'));
  parts.push(el('pre', {}, JSON.stringify(p, null, 2)));
  return parts;
}

// A line about an event: a purchase's value and order, else the page, product or campaign it names.
function eventDetails(e) {
  const p = e.properties || {};
  if (e.type === 'purchase') {
    const value = [p.revenue, p.total, p.value].find((v) => v !== undefined && v !== null);
    return [value !== undefined ? `${value}${p.currency ? ' ' + p.currency : ''}` : '',
            p.orderId ? `order ${p.orderId}` : ''].filter(Boolean).join(', ');
  }
  return text(p.path || p.url || p.productId || p.campaign || p.name || '');
}

// The profile's merges (as survivor or merged), each not yet undone with a button that undoes it.
function mergesTable(merges) {
  const columns = ['merge', 'at', 'survivor', 'merged', 'automatic', 'reason', 'undone at', ''];
  const rows = merges.map((m) => {
    const cells = [m.mergeId, m.at, m.survivor, (m.merged || []).join(', '), m.automatic, m.reason, m.unmergedAt]
      .map((v) => el('td', {}, text(v)));
    const action = el('td', {});
    if (!m.unmergedAt) {
      action.append(button('', 'Unmerge...', async () => {
        const merged = (m.merged || []).join(', ');
        if (!confirm(`Undo merge ${m.mergeId}? ${merged} become profiles of their own again, with their ` +
                     'identifiers and events.')) return;
        const r = await api('POST', `/api/cdp/profiles/${segmentOf(m.survivor)}/unmerge`, { mergeId: m.mergeId });
        notify(`Merge ${r.mergeId} undone: ${(r.restored || []).join(', ')} restored, ${r.eventsMoved} events ` +
               'moved back.');
        render();
      }, true));
      action.firstChild.classList.add('unmerge-button');
    }
    return el('tr', {}, ...cells, action);
  });
  return el('table', { id: 'merges' }, el('thead', {}, el('tr', {}, ...columns.map((c) => el('th', {}, c)))),
            el('tbody', {}, ...rows));
}

// Changes to a profile, each one API call recorded in the audit log under the key's principal: a JSON merge patch
// (attributes, custom fields, identifiers, consent), a consent statement, and merging other profiles into it.
function profileChanges(id) {
  const enc = segmentOf(id);
  const patchText = el('textarea', { id: 'patch-text', rows: '3', spellcheck: 'false',
                                     placeholder: '{"attributes": {"city": "Oslo", "customFields": {"tier": "gold"}}}' });
  const patch = el('fieldset', { id: 'patch' }, el('legend', {}, 'Edit (a JSON merge patch; null removes a field)'),
    patchText, el('div', { class: 'inline' }, button('patch-button', 'Apply', async () => {
      await api('PATCH', `/api/cdp/profiles/${enc}`, parseObject(patchText.value, 'the patch'));
      notify('Profile patched.');
      render();
    })));

  const purpose = el('input', { id: 'consent-purpose', list: 'consent-purposes', value: 'email', size: '14' });
  const choice = el('select', { id: 'consent-choice' },
                    el('option', { value: 'granted' }, 'granted'), el('option', { value: 'denied' }, 'denied'));
  const source = el('input', { id: 'consent-source', value: 'console', size: '12', title: 'source' });
  const policy = el('input', { id: 'consent-policy', placeholder: 'policy version', size: '12' });
  const consent = el('fieldset', { id: 'record-consent' }, el('legend', {}, 'Record a consent statement'),
    el('div', { class: 'inline' }, purpose,
       el('datalist', { id: 'consent-purposes' },
          ...['email', 'sms', 'tracking', 'ads', 'ad_storage', 'analytics_storage', 'ad_user_data',
              'ad_personalization'].map((v) => el('option', { value: v }))),
       choice, el('span', { class: 'muted' }, 'source'), source, policy,
       button('consent-button', 'Record', async () => {
         const name = purpose.value.trim();
         if (!name) throw new Error('name a purpose');
         const body = { profileId: id, purposes: { [name]: choice.value }, source: source.value.trim() || 'console' };
         if (policy.value.trim()) body.policyVersion = policy.value.trim();
         await api('POST', '/api/cdp/consent', body);
         notify(`Consent recorded: ${name} ${choice.value}.`);
         render();
       })));

  const others = el('input', { id: 'merge-ids', placeholder: 'profile ids, comma-separated', size: '40' });
  const reason = el('input', { id: 'merge-reason', placeholder: 'reason', size: '24' });
  const merge = el('fieldset', { id: 'merge' }, el('legend', {}, 'Merge other profiles into this one'),
    el('div', { class: 'inline' }, others, reason, button('merge-button', 'Merge...', async () => {
      const ids = others.value.split(',').map((v) => v.trim()).filter(Boolean);
      if (ids.length === 0) throw new Error('name at least one profile to merge into this one');
      if (!confirm(`Merge ${ids.join(', ')} into ${id}? Their identifiers, events and consent move to this ` +
                   'profile; the merge can be undone.')) return;
      const r = await api('POST', '/api/cdp/profiles/merge',
                          { profileIds: [id, ...ids], reason: reason.value.trim() || 'merged in the console' });
      notify(`Merged ${r.merged.join(', ')} into ${r.profileId} (merge ${r.mergeId}).`);
      go('#/profile/' + encodeURIComponent(r.profileId));
    })));
  return el('div', { id: 'changes' }, patch, consent, merge);
}

// The consent history, 20 records a page (oldest recorded first), "More" appending the next page.
function consentHistory(id) {
  const body = el('tbody', {});
  const status = el('p', { class: 'muted' });
  const more = el('button', { class: 'secondary', id: 'consent-more', hidden: '' }, 'More');
  const columns = [
    (r) => r.recordedAt, (r) => r.via, (r) => r.source,
    (r) => Object.entries(r.purposes || {}).map(([k, v]) => `${k}: ${v ? 'granted' : 'denied'}`).join(', '),
    (r) => r.policyVersion,
  ];
  let cursor = null;
  const load = async () => {
    try {
      const page = await api('GET', `/api/cdp/consent/${segmentOf(id)}/history${query({ limit: 20, cursor })}`);
      for (const record of page.items || []) {
        body.append(el('tr', {}, ...columns.map((c) => el('td', {}, text(c(record))))));
      }
      cursor = page.nextCursor;
      more.hidden = !cursor;
      const n = body.children.length;
      status.textContent = n === 0 ? 'No record.' : `${n} record${n === 1 ? '' : 's'} shown`;
    } catch (err) {
      status.replaceChildren(unavailable(err));
      more.hidden = true;
    }
  };
  more.addEventListener('click', load);
  load();
  const head = el('tr', {}, ...['recorded', 'via', 'source', 'purposes', 'policy'].map((h) => el('th', {}, h)));
  return el('section', { id: 'consent-history' }, el('table', {}, el('thead', {}, head), body), status, more);
}

// GDPR access (an export, downloaded) and erasure (after a confirmation): both are requests the server records.
function privacyActions(id) {
  const out = el('p', { id: 'privacy-result' });
  const exportButton = el('button', { class: 'secondary', id: 'export-button' }, 'Export (access request)');
  const eraseButton = el('button', { class: 'secondary', id: 'erase-button' }, 'Erase (physically)...');
  exportButton.addEventListener('click', async () => {
    try {
      const doc = await api('POST', `/api/cdp/gdpr/export/${segmentOf(id)}`);
      const count = (key) => (Array.isArray(doc[key]) ? doc[key].length : 0);
      out.className = 'ok';
      out.textContent = `Exported (request ${doc.requestId}): ${count('events')} events, ${count('sessions')} ` +
                        `sessions, ${get(doc, 'consent.history')?.length || 0} consent records.`;
      const link = el('a', { download: `${id}-export.json` });
      link.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    } catch (err) {
      showError(err);
    }
  });
  eraseButton.addEventListener('click', async () => {
    if (!confirm(`Erase profile ${id}, its events and everything derived from it? This cannot be undone.`)) return;
    try {
      const record = await api('POST', `/api/cdp/gdpr/delete/${segmentOf(id)}`);
      view.replaceChildren(el('h1', {}, 'Erased'), el('p', { id: 'erased', class: 'ok' },
        `Request ${record.id}: ${record.status} in ${record.turnaroundMs} ms; ` +
        `${record.suppressedIdentifiers || 0} identifiers suppressed.`));
    } catch (err) {
      showError(err);
    }
  });
  return el('div', { class: 'inline' }, exportButton, ' ', eraseButton, out);
}

// "Count matches": the size of the rule typed in `rule` (a text area), now, written into `out`.
function countButton(id, rule, out) {
  return button(id, 'Count matches', async () => {
    out.textContent = '';
    const r = await api('POST', '/api/cdp/segments/estimate', { rule: parseObject(rule.value, 'the rule') });
    out.textContent = `${r.size} profile${r.size === 1 ? '' : 's'} match now`;
  }, true);
}

// A new rule segment: its rule typed as JSON (docs/segments.md), counted before it is saved.
function newSegmentForm() {
  const name = el('input', { id: 'segment-name', placeholder: 'name', size: '24' });
  const description = el('input', { id: 'segment-description', placeholder: 'description (optional)', size: '40' });
  const rule = el('textarea', { id: 'segment-rule', rows: '4', spellcheck: 'false' });
  rule.value = '{"event": "purchase"}';
  const manual = el('input', { id: 'segment-manual', type: 'checkbox' });
  manual.addEventListener('change', () => { rule.disabled = manual.checked; });
  const out = el('span', { id: 'estimate-result', class: 'muted' });
  return el('fieldset', { id: 'new-segment' }, el('legend', {}, 'New segment (its rule in JSON, as docs/segments.md)'),
    el('div', { class: 'inline' }, name, description,
       el('label', {}, manual, ' a manual list (members added by hand, no rule)')), rule,
    el('div', { class: 'inline' },
       countButton('estimate-button', rule, out),
       button('create-segment-button', 'Create', async () => {
         const body = manual.checked ? { name: name.value.trim(), type: 'manual' }
                                     : { name: name.value.trim(), rule: parseObject(rule.value, 'the rule') };
         if (description.value.trim()) body.description = description.value.trim();
         const created = await api('POST', '/api/cdp/segments', body);
         notify(`Segment "${created.name}" created: ${created.size} members.`);
         go('#/segment/' + encodeURIComponent(created.id));
       }),
       out));
}

async function segments() {
  const list = await api('GET', '/api/cdp/segments');
  const items = list.segments || list.items || [];
  return [el('h1', {}, 'Segments'), newSegmentForm(), table([
    { label: 'name', value: (s) => s.name },
    { label: 'id', value: (s) => s.id },
    { label: 'type', value: (s) => s.type || 'rule' },
    { label: 'size', value: (s) => s.size },
    { label: 'description', value: (s) => s.description },
  ], items, (s) => go('#/segment/' + encodeURIComponent(s.id)))];
}

// "Next page" of a list view at `hash`, or nothing on the last page.
function nextPage(hash, cursor) {
  return cursor ? el('button', { class: 'secondary', onclick: () => go(hash + query({ cursor })) }, 'Next page') : null;
}

async function segment(id, params) {
  const enc = segmentOf(id);
  const [def, page] = await Promise.all([
    api('GET', `/api/cdp/segments/${enc}`),
    api('GET', `/api/cdp/segments/${enc}/members${query({ limit: 50, cursor: params.get('cursor') })}`),
  ]);
  const members = page.items || [];
  const more = nextPage(`#/segment/${enc}`, page.nextCursor);
  const remove = button('delete-segment', 'Delete segment...', async () => {
    if (!confirm(`Delete segment "${def.name}"? Its definition and membership history go; profiles stay.`)) return;
    await api('DELETE', `/api/cdp/segments/${enc}`);
    notify(`Segment "${def.name}" deleted.`);
    go('#/segments');
  }, true);
  return [el('h1', {}, def.name || id), el('p', { class: 'muted' }, (def.description || '') + ` (${def.id})`),
          el('p', { id: 'segment-size' }, `${def.size} member${def.size === 1 ? '' : 's'}`, ' ', remove),
          def.type === 'manual' ? manualMembersForm(def) : ruleEditor(def), el('h2', {}, 'Members'),
          table([{ label: 'id', value: (m) => (typeof m === 'string' ? m : m.id) },
                 { label: 'email', value: (m) => (typeof m === 'string' ? '' : get(m, 'externalIds.email')) }],
                members, (m) => go('#/profile/' + encodeURIComponent(typeof m === 'string' ? m : m.id))),
          more];
}

// A rule segment's rule, editable: "Count matches" for the edited rule, "Save" replaces the definition (membership
// changes show in the segment's feed as "updated").
function ruleEditor(def) {
  const rule = el('textarea', { id: 'edit-rule', rows: '6', spellcheck: 'false' });
  rule.value = JSON.stringify(def.rule, null, 2);
  const out = el('span', { id: 'edit-estimate', class: 'muted' });
  return el('fieldset', { id: 'rule-editor' }, el('legend', {}, 'Rule'), rule,
    el('div', { class: 'inline' },
       countButton('edit-estimate-button', rule, out),
       button('save-rule-button', 'Save', async () => {
         const body = { name: def.name, rule: parseObject(rule.value, 'the rule') };
         if (def.description) body.description = def.description;
         const saved = await api('PUT', `/api/cdp/segments/${segmentOf(def.id)}`, body);
         notify(`Segment "${saved.name}" saved: ${saved.size} members.`);
         render();
       }),
       out));
}

// A manual segment's members, added or removed by profile id or by identifier ("email:ada@example.com").
function manualMembersForm(def) {
  const items = el('input', { id: 'manual-items', size: '60',
                              placeholder: 'profile ids or type:value identifiers, comma-separated' });
  const parse = () => {
    const list = items.value.split(',').map((v) => v.trim()).filter(Boolean).map((v) => {
      const colon = v.indexOf(':');
      return colon > 0 && !v.startsWith('http') ? { type: v.slice(0, colon), value: v.slice(colon + 1) } : v;
    });
    if (list.length === 0) throw new Error('name at least one profile id or identifier');
    return list;
  };
  const apply = (path, verb) => async () => {
    const r = await api('POST', `/api/cdp/segments/${segmentOf(def.id)}/${path}`, { items: parse() });
    const n = (k) => (Array.isArray(r[k]) ? r[k].length : r[k] || 0);
    notify(`${n(verb)} ${verb}, ${n('unchanged')} unchanged, ${n('notFound')} not found.`);
    render();
  };
  return el('fieldset', { id: 'manual-members' }, el('legend', {}, 'A manual list: add or remove members'),
    el('div', { class: 'inline' }, items, button('add-members', 'Add', apply('members', 'added')),
       button('remove-members', 'Remove', apply('members/remove', 'removed'), true)));
}

// Audiences: segments combined for activation (AND / OR), minus excluded segments, restricted to a consent channel.
const PURPOSES = ['email', 'sms', 'tracking', 'ads', 'ad_storage', 'analytics_storage', 'ad_user_data',
                  'ad_personalization'];

function idList(input) {
  return input.value.split(',').map((v) => v.trim()).filter(Boolean);
}

async function audiences() {
  const list = await api('GET', '/api/cdp/audiences');
  const name = el('input', { id: 'audience-name', placeholder: 'name', size: '24' });
  const ids = el('input', { id: 'audience-segments', placeholder: 'segment ids (seg_...), comma-separated',
                            size: '44' });
  const operator = el('select', { id: 'audience-operator' }, el('option', { value: 'OR' }, 'in any of them (OR)'),
                      el('option', { value: 'AND' }, 'in all of them (AND)'));
  const exclude = el('input', { id: 'audience-exclude', placeholder: 'excluded segment ids (optional)', size: '36' });
  const channel = el('input', { id: 'audience-channel', list: 'audience-channels', size: '14',
                                placeholder: 'channel (optional)' });
  const form = el('fieldset', { id: 'new-audience' }, el('legend', {}, 'New audience'),
    el('div', { class: 'inline' }, name, ids, operator),
    el('div', { class: 'inline' }, exclude, channel,
       el('datalist', { id: 'audience-channels' }, ...PURPOSES.map((v) => el('option', { value: v }))),
       button('create-audience-button', 'Create', async () => {
         const segments = idList(ids);
         if (segments.length === 0) throw new Error('name at least one segment id');
         const body = { name: name.value.trim(), segments: { operator: operator.value, ids: segments } };
         if (idList(exclude).length) body.exclude = idList(exclude);
         if (channel.value.trim()) body.channel = channel.value.trim();
         const created = await api('POST', '/api/cdp/audiences', body);
         notify(`Audience "${created.name}" created: ${created.size} members.`);
         go('#/audience/' + encodeURIComponent(created.id));
       })),
    el('p', { class: 'muted' }, 'Members: the segments combined, minus the excluded ones, minus suppressed ' +
                                'identifiers, and with a channel only those who consented to it.'));
  return [el('h1', {}, 'Audiences'), form, table([
    { label: 'name', value: (a) => a.name },
    { label: 'id', value: (a) => a.id },
    { label: 'segments', value: (a) => `${get(a, 'segments.operator')}: ${(get(a, 'segments.ids') || []).join(', ')}` },
    { label: 'channel', value: (a) => a.channel },
    { label: 'size', value: (a) => a.size },
  ], list.audiences || [], (a) => go('#/audience/' + encodeURIComponent(a.id)))];
}

async function audience(id, params) {
  const enc = segmentOf(id);
  const [def, overlap, page] = await Promise.all([
    api('GET', `/api/cdp/audiences/${enc}`),
    api('GET', `/api/cdp/audiences/${enc}/overlap`),
    api('GET', `/api/cdp/audiences/${enc}/members${query({ limit: 50, cursor: params.get('cursor') })}`),
  ]);
  const members = page.items || [];
  const more = nextPage(`#/audience/${enc}`, page.nextCursor);
  const remove = button('delete-audience', 'Delete audience...', async () => {
    if (!confirm(`Delete audience "${def.name}"? Its segments and their members stay.`)) return;
    await api('DELETE', `/api/cdp/audiences/${enc}`);
    notify(`Audience "${def.name}" deleted.`);
    go('#/audiences');
  }, true);
  return [el('h1', {}, def.name || id), el('p', { class: 'muted' }, (def.description || '') + ` (${def.id})`),
          el('p', { id: 'audience-size' }, `${overlap.audience.size} member${overlap.audience.size === 1 ? '' : 's'}`,
             ' ', remove),
          el('div', { class: 'cards', id: 'audience-parts' }, card('Segments combined', overlap.combined),
             card('Excluded', overlap.excluded), card('Suppressed', overlap.suppressed),
             card('Without consent', overlap.withoutConsent)),
          el('pre', {}, JSON.stringify({ segments: def.segments, exclude: def.exclude, channel: def.channel,
                                         suppressionLists: def.suppressionLists }, null, 2)),
          el('h2', {}, 'Members'),
          table([{ label: 'id', value: (m) => m.id }, { label: 'email', value: (m) => get(m, 'externalIds.email') }],
                members, (m) => go('#/profile/' + encodeURIComponent(m.id))),
          more];
}

const PROPOSAL_STATUSES = ['pending', 'accepted', 'rejected', 'merged', 'obsolete', 'all'];

// Identity resolution: its figures, duplicate detection (fuzzy matching) and the proposals it made, to accept (a
// merge, which can be undone from the profile's page) or reject.
async function identityView(params) {
  const status = PROPOSAL_STATUSES.includes(params.get('status')) ? params.get('status') : 'pending';
  const [stats, listed] = await Promise.all([
    api('GET', '/api/cdp/identity/stats'),
    api('GET', '/api/cdp/identity/proposals' + query({ status: status === 'all' ? '' : status })),
  ]);
  const rate = stats.unificationRate;
  const filter = choices({ id: 'proposal-status' }, PROPOSAL_STATUSES, status);
  filter.addEventListener('change', () => go('#/identity' + query({ status: filter.value })));
  const rows = (listed.proposals || []).map((p) => {
    const [a, b] = p.profileIds || [];
    const why = (p.comparisons || []).map((c) => `${c.comparator}: ${c.level}`).join(', ');
    const actions = el('td', {});
    if (p.status === 'pending') {
      for (const [verb, label] of [['accept', 'Accept (merge)'], ['reject', 'Reject']]) {
        const b2 = button('', label, async () => {
          const r = await api('POST', `/api/cdp/identity/proposals/${segmentOf(p.proposalId)}/${verb}`);
          notify(`Proposal ${r.proposalId}: ${r.status}${r.mergeId ? ' (merge ' + r.mergeId + ')' : ''}.`);
          render();
        }, verb === 'reject');
        b2.classList.add(verb + '-button');
        actions.append(b2, ' ');
      }
    }
    return el('tr', { 'data-proposal': p.proposalId },
      el('td', {}, typeof p.probability === 'number' ? p.probability.toFixed(4) : text(p.probability)),
      el('td', {}, a ? profileLink(a) : ''), el('td', {}, b ? profileLink(b) : ''), el('td', {}, why),
      el('td', {}, text(p.status)), actions);
  });
  const head = ['probability', 'profile', 'profile', 'why', 'status', ''].map((h) => el('th', {}, h));
  return [
    el('h1', {}, 'Identity'),
    el('div', { class: 'cards' }, card('Profiles', stats.profiles), card('Merges', stats.merges),
       card('Profiles merged away', stats.mergedProfiles), card('Unmerges', stats.unmerges),
       card('Unification rate (merged away / created)',
            typeof rate === 'number' ? (rate * 100).toFixed(1) + '%' : text(rate))),
    el('h2', {}, 'Duplicate profiles'),
    el('div', { class: 'inline' },
       button('find-duplicates', 'Find duplicates', async () => {
         const r = await api('POST', '/api/cdp/identity/duplicates');
         notify(`Duplicate detection over ${r.profiles} profiles: ${r.candidatePairs} candidate pairs, ` +
                `${r.proposed} new proposals, ${r.updated} updated, ${r.autoMerged} merged automatically, ` +
                `${r.notMergeable} left out (the identity rules forbid their merge).`);
         render();
       }),
       el('span', { class: 'muted' }, 'proposals:'), filter),
    el('table', { id: 'proposals' }, el('thead', {}, el('tr', {}, ...head)), el('tbody', {}, ...rows)),
    rows.length === 0 ? el('p', { class: 'muted', id: 'no-proposals' }, `No ${status === 'all' ? '' : status + ' '}proposal.`)
                      : null,
  ];
}

const PERIODS = ['day', 'week', 'month'];
const COHORT_PERIODS = 8;
const MODELS = ['last_touch', 'first_touch', 'linear', 'time_decay', 'position_based', 'data_driven'];

// A funnel of event types (comma-separated) within a window, and revenue attribution by channel for one model.
async function analytics(params) {
  const steps = params.get('steps') || 'product_view, add_to_cart, purchase';
  const windowText = params.get('window') || '7d';
  const model = MODELS.includes(params.get('model')) ? params.get('model') : 'last_touch';
  const returnEvent = params.get('return') || 'purchase';
  const period = PERIODS.includes(params.get('period')) ? params.get('period') : 'week';
  const form = el('form', { class: 'inline', id: 'analytics-form' },
    el('label', { for: 'funnel-steps' }, 'Funnel steps'),
    el('input', { id: 'funnel-steps', value: steps, size: '40' }),
    el('label', { for: 'funnel-window' }, 'within'),
    el('input', { id: 'funnel-window', value: windowText, size: '4' }),
    el('label', { for: 'attribution-model' }, 'attribution'),
    choices({ id: 'attribution-model' }, MODELS, model),
    el('label', { for: 'cohort-return' }, 'cohorts: return event'),
    el('input', { id: 'cohort-return', value: returnEvent, size: '12' }),
    el('label', { for: 'cohort-period' }, 'by'),
    choices({ id: 'cohort-period' }, PERIODS, period),
    el('button', { type: 'submit' }, 'Run'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go('#/analytics' + query({ steps: form.querySelector('#funnel-steps').value,
                               window: form.querySelector('#funnel-window').value.trim(),
                               model: form.querySelector('#attribution-model').value,
                               return: form.querySelector('#cohort-return').value.trim(),
                               period: form.querySelector('#cohort-period').value }));
  });
  const stepList = steps.split(',').map((s) => s.trim()).filter(Boolean).map((event) => ({ event }));
  const [funnel, attribution, cohorts] = await Promise.all([
    settled(api('POST', '/api/cdp/analytics/funnel', { steps: stepList, window: windowText })),
    settled(api('GET', '/api/cdp/analytics/attribution' + query({ conversion: 'purchase', model }))),
    settled(api('POST', '/api/cdp/analytics/cohorts', { returnEvent, period, periods: COHORT_PERIODS })),
  ]);
  const percent = (x) => (typeof x === 'number' ? (x * 100).toFixed(1) + '%' : text(x));
  const seconds = (x) => (typeof x === 'number' ? x.toFixed(0) + ' s' : '');
  const money = (v) => (typeof v === 'number' ? v.toLocaleString(undefined, { maximumFractionDigits: 2 }) : text(v));
  return [
    el('h1', {}, 'Analytics'), form,
    el('h2', {}, 'Funnel'),
    el('div', { id: 'funnel' }, funnel.error ? unavailable(funnel.error) : table([
      { label: 'step', value: (s) => s.step },
      { label: 'event', value: (s) => s.event },
      { label: 'profiles', value: (s) => s.profiles },
      { label: 'from previous', value: (s) => percent(s.conversionFromPrevious) },
      { label: 'from first', value: (s) => percent(s.conversionFromFirst) },
      { label: 'median time from previous', value: (s) => seconds(s.medianSecondsFromPrevious) },
    ], funnel.value.steps || [])),
    el('h2', {}, 'Purchases by channel'),
    el('div', { id: 'attribution' }, ...(attribution.error ? [unavailable(attribution.error)] : [
      el('p', { class: 'muted' }, `purchases: ${attribution.value.conversions}, revenue: ` +
        `${money(attribution.value.revenue)}, unattributed: ${attribution.value.unattributed} (${model}, 30 days)`),
      table([
        { label: 'source', value: (c) => c.source },
        { label: 'medium', value: (c) => c.medium },
        { label: 'campaign', value: (c) => c.campaign },
        { label: 'conversions', value: (c) => (Number.isInteger(c.conversions) ? c.conversions
                                                : Number(c.conversions).toFixed(2)) },
        { label: 'revenue', value: (c) => money(c.revenue) },
      ], (attribution.value.channels || []).slice(0, 25)),
    ])),
    el('h2', {}, `Cohorts: profiles by the ${period} of their first event, returning with ${returnEvent}`),
    el('div', { id: 'cohorts' }, cohorts.error ? unavailable(cohorts.error) : cohortTable(cohorts.value)),
  ];
}

// A cohort matrix: per cohort its size, then per period k the profiles that returned in it (and their share).
function cohortTable(answer) {
  const n = answer.periods || COHORT_PERIODS;
  const columns = [{ label: 'cohort', value: (c) => String(c.cohort || '').slice(0, 10) },
                   { label: 'profiles', value: (c) => c.size }];
  for (let k = 0; k < n; ++k) {
    columns.push({ label: String(k), value: (c) => {
      const count = (c.counts || [])[k];
      const pct = (c.percentages || [])[k];
      return count === undefined ? '' : `${count} (${typeof pct === 'number' ? pct.toFixed(0) : text(pct)}%)`;
    } });
  }
  return table(columns, answer.cohorts || []);
}

async function audit(params) {
  const filters = { principal: params.get('principal'), operation: params.get('operation'),
                    target: params.get('target'), resource: params.get('resource'), since: params.get('since'),
                    until: params.get('until'), cursor: params.get('cursor') };
  const page = await api('GET', '/api/cdp/audit' + query({ ...filters, limit: 50 }));
  const form = el('form', { class: 'inline', id: 'audit-form' },
    el('input', { id: 'audit-operation', placeholder: 'operation, e.g. profiles.get', value: filters.operation || '' }),
    el('input', { id: 'audit-principal', placeholder: 'principal', value: filters.principal || '' }),
    el('input', { id: 'audit-target', placeholder: 'profile id', value: filters.target || '' }),
    el('input', { id: 'audit-resource', placeholder: 'segment, audience, list... id', value: filters.resource || '' }),
    el('input', { id: 'audit-since', placeholder: 'since (ISO 8601)', size: '18', value: filters.since || '' }),
    el('input', { id: 'audit-until', placeholder: 'until (ISO 8601)', size: '18', value: filters.until || '' }),
    el('button', { type: 'submit' }, 'Filter'),
    el('button', { type: 'button', class: 'secondary', id: 'verify-button' }, 'Verify the chain'),
    el('span', { id: 'verify-result' }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const value = (id) => form.querySelector(id).value.trim();
    go('#/audit' + query({ operation: value('#audit-operation'), principal: value('#audit-principal'),
                           target: value('#audit-target'), resource: value('#audit-resource'),
                           since: value('#audit-since'), until: value('#audit-until') }));
  });
  form.querySelector('#verify-button').addEventListener('click', async () => {
    const out = form.querySelector('#verify-result');
    try {
      const v = await api('GET', '/api/cdp/audit/verify');
      out.className = v.ok ? 'ok' : 'bad';
      out.textContent = v.ok ? `chain verified: ${v.entries} entries` : `broken at entry ${v.brokenAt}: ${v.reason}`;
    } catch (err) {
      showError(err);
    }
  });
  const more = page.nextCursor
    ? el('button', { class: 'secondary', onclick: () => go('#/audit' + query({ ...filters, cursor: page.nextCursor })) },
         'Older')
    : null;
  return [el('h1', {}, 'Audit log'), form, table([
    { label: 'seq', value: (a) => a.seq },
    { label: 'at', value: (a) => a.at },
    { label: 'principal', value: (a) => a.principal },
    { label: 'operation', value: (a) => a.operation },
    { label: 'resource', value: (a) => a.resource },
    { label: 'count', value: (a) => a.count },
    { label: 'targets', value: (a) => (a.targets || []).join(', ') + (a.redacted ? ' (redacted)' : '') },
    { label: 'outcome', value: (a) => a.outcome },
  ], page.items || []), more];
}

const REQUEST_TYPES = ['all', 'access', 'erasure'];
const REQUEST_STATUSES = ['all', 'completed', 'purging', 'failed'];
const IDENTIFIER_TYPES = ['email', 'phone', 'customerId', 'deviceId', 'anonymousId', 'shopifyId', 'profileId'];

// Privacy: the requests of data subjects (access, erasure) and their turnaround, suppression of erased
// identifiers, what the key may do, and for an admin the governance policy, API keys and retention. A section the
// key may not read says so in its place.
async function privacyView(params) {
  const type = REQUEST_TYPES.includes(params.get('type')) ? params.get('type') : 'all';
  const status = REQUEST_STATUSES.includes(params.get('status')) ? params.get('status') : 'all';
  const [requests, access, policy, keys, retention, runs] = await Promise.all([
    settled(api('GET', '/api/cdp/gdpr/requests' + query({ type: type === 'all' ? '' : type,
                                                          status: status === 'all' ? '' : status,
                                                          cursor: params.get('cursor'), limit: 25 }))),
    settled(api('GET', '/api/cdp/governance/access')),
    settled(api('GET', '/api/cdp/governance/policy')),
    settled(api('GET', '/api/cdp/governance/keys')),
    settled(api('GET', '/api/cdp/retention/policies')),
    settled(api('GET', '/api/cdp/retention/runs' + query({ limit: 10 }))),
  ]);
  const here = (extra) => '#/privacy' + query({ type: type === 'all' ? '' : type,
                                                status: status === 'all' ? '' : status, ...extra });
  return [el('h1', {}, 'Privacy'),
    el('h2', {}, 'Requests of data subjects (access, erasure)'), requestsSection(requests, type, status, here),
    el('h2', {}, 'Suppression of erased identifiers'), suppressionForm(),
    el('h2', {}, 'What this key may do'),
    el('div', { id: 'access' }, access.error ? unavailable(access.error) : table(
      [{ label: 'of', value: (r) => r[0] }, { label: 'is', value: (r) => r[1] }],
      Object.entries(access.value).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]))),
    el('h2', {}, 'Governance policy'), policySection(policy),
    el('h2', {}, 'API keys'), keysSection(keys),
    el('h2', {}, 'Retention'), retentionSection(retention, runs)];
}

function requestsSection(requests, type, status, here) {
  if (requests.error) return el('div', { id: 'requests' }, unavailable(requests.error));
  const t = requests.value.turnaround || {};
  const ms = (v) => (typeof v === 'number' ? v.toFixed(1) + ' ms' : text(v));
  const typeFilter = choices({ id: 'request-type' }, REQUEST_TYPES, type);
  const statusFilter = choices({ id: 'request-status' }, REQUEST_STATUSES, status);
  const refilter = () => go('#/privacy' + query({ type: typeFilter.value === 'all' ? '' : typeFilter.value,
                                                  status: statusFilter.value === 'all' ? '' : statusFilter.value }));
  typeFilter.addEventListener('change', refilter);
  statusFilter.addEventListener('change', refilter);
  const items = requests.value.items || [];
  return el('div', { id: 'requests' },
    el('div', { class: 'cards' }, card('Completed', t.completed), card('Turnaround p50', ms(t.p50Ms)),
       card('p90', ms(t.p90Ms)), card('Slowest', ms(t.maxMs))),
    el('p', { class: 'inline' }, el('span', { class: 'muted' }, 'type '), typeFilter,
       el('span', { class: 'muted' }, ' status '), statusFilter),
    table([
      { label: 'received', value: (r) => r.receivedAt },
      { label: 'type', value: (r) => r.type },
      { label: 'status', value: (r) => r.status },
      { label: 'completed', value: (r) => r.completedAt },
      { label: 'turnaround', value: (r) => ms(r.turnaroundMs) },
      { label: 'subject (keyed hash)', value: (r) => r.subjectHash },
      { label: 'id', value: (r) => r.id },
    ], items),
    items.length === 0 ? el('p', { class: 'muted' }, 'No request.') : null,
    nextPage(here({}), requests.value.nextCursor));
}

function suppressionForm() {
  const type = choices({ id: 'suppression-type' }, IDENTIFIER_TYPES, 'email');
  const value = el('input', { id: 'suppression-value', placeholder: 'value, e.g. ada@example.com', size: '32' });
  const out = el('span', { id: 'suppression-result' });
  const body = () => {
    if (value.value.trim() === '') throw new Error('the value is empty');
    return { type: type.value, value: value.value.trim() };
  };
  return el('fieldset', { id: 'suppression' },
    el('legend', {}, 'An identifier (normalized as identity resolution does)'),
    el('div', { class: 'inline' }, type, value,
       button('suppression-check', 'Check', async () => {
         out.textContent = '';
         const r = await api('POST', '/api/cdp/gdpr/suppression/check', body());
         out.className = r.suppressed ? 'bad' : 'ok';
         out.textContent = r.suppressed ? 'suppressed: data naming it is refused' : 'not suppressed';
       }, true),
       button('suppression-lift', 'Lift suppression...', async () => {
         const b = body();
         if (!confirm(`Lift the suppression of ${b.type} ${b.value}? Data naming it may then create a profile.`)) return;
         const r = await api('POST', '/api/cdp/gdpr/suppression/lift', b);
         notify(r.unsuppressed ? `Suppression of ${r.type} ${r.value} lifted.` : `${r.type} ${r.value} was not suppressed.`);
         render();
       }, true),
       out));
}

function policySection(policy) {
  if (policy.error) return el('div', { id: 'policy' }, unavailable(policy.error));
  const area = el('textarea', { id: 'policy-text', rows: '12', spellcheck: 'false' });
  area.value = JSON.stringify({ classification: policy.value.classification, roles: policy.value.roles,
                                principals: policy.value.principals }, null, 2);
  return el('div', { id: 'policy' },
    el('p', { class: 'muted' }, `Classes: ${(policy.value.classes || []).join(', ')}. Roles grant reading and ` +
       'writing per class or field and operations (admin, audit, erase, export); principals hold roles ' +
       '(docs/privacy.md). Built-in roles and principals are kept whatever the policy says.'),
    area,
    el('div', { class: 'inline' }, button('save-policy', 'Save policy...', async () => {
      const next = parseObject(area.value, 'the policy');
      if (!confirm('Replace the governance policy? Principals it drops lose their keys.')) return;
      const r = await api('PUT', '/api/cdp/governance/policy', next);
      const revoked = (r.revokedKeys || []).length;
      notify(`Policy saved: ${Object.keys(r.roles || {}).length} roles, ${Object.keys(r.principals || {}).length} ` +
             `principals${revoked ? `, ${revoked} keys revoked` : ''}.`);
      render();
    })));
}

function keysSection(keys) {
  if (keys.error) return el('div', { id: 'keys' }, unavailable(keys.error));
  const principal = el('input', { id: 'key-principal', placeholder: 'principal (defined in the policy)', size: '24' });
  const description = el('input', { id: 'key-description', placeholder: 'description (optional)', size: '32' });
  const rows = (keys.value.keys || []).map((k) => {
    const revoke = button('', 'Revoke...', async () => {
      if (!confirm(`Revoke key ${k.id} of ${k.principal}? Requests with it fail at once.`)) return;
      await api('DELETE', `/api/cdp/governance/keys/${segmentOf(k.id)}`);
      notify(`Key ${k.id} revoked.`);
      render();
    }, true);
    revoke.classList.add('revoke-button');
    return el('tr', { 'data-key': k.id }, el('td', {}, text(k.principal)), el('td', {}, text(k.description)),
      el('td', {}, text(k.createdAt)), el('td', {}, text(k.id)), el('td', {}, revoke));
  });
  return el('div', { id: 'keys' },
    el('table', { id: 'key-list' }, el('thead', {}, el('tr', {}, ...['principal', 'description', 'created', 'id', '']
      .map((h) => el('th', {}, h)))), el('tbody', {}, ...rows)),
    rows.length === 0 ? el('p', { class: 'muted' }, 'No key issued.') : null,
    el('div', { class: 'inline' }, principal, description, button('issue-key', 'Issue a key', async () => {
      const body = { principal: principal.value.trim() };
      if (description.value.trim()) body.description = description.value.trim();
      const r = await api('POST', '/api/cdp/governance/keys', body);
      notify(`Key ${r.id} for ${r.principal}, shown this once (the database keeps only a hash): ${r.key}`);
      render();
    })));
}

function retentionSection(retention, runs) {
  if (retention.error) return el('div', { id: 'retention' }, unavailable(retention.error));
  const area = el('textarea', { id: 'retention-text', rows: '6', spellcheck: 'false' });
  area.value = JSON.stringify({ policies: retention.value.policies || [] }, null, 2);
  const every = retention.value.intervalSeconds;
  return el('div', { id: 'retention' },
    el('p', { class: 'muted' }, (every ? `Applied every ${every} s` : 'Applied only when run') +
       '. Policies: {"name", "target": "events", "eventType", "eventName"?, "olderThan": "365d"} or ' +
       '{"name", "target": "profiles", "inactiveFor": "3y"} (docs/privacy.md).'),
    area,
    el('div', { class: 'inline' },
       button('save-retention', 'Save policies', async () => {
         const r = await api('PUT', '/api/cdp/retention/policies', parseObject(area.value, 'the policies'));
         notify(`Retention policies saved: ${(r.policies || []).length}.`);
         render();
       }),
       button('run-retention', 'Run now...', async () => {
         if (!confirm('Apply every enabled retention policy now? What it purges is gone for good.')) return;
         const r = await api('POST', '/api/cdp/retention/run');
         notify(`Retention run ${r.id}: ${r.status}, ${r.eventsPurged} events purged, ${r.profilesErased} profiles ` +
                'erased.');
         render();
       }, true)),
    el('div', { id: 'retention-runs' }, runs.error ? unavailable(runs.error) : table([
      { label: 'started', value: (r) => r.startedAt },
      { label: 'trigger', value: (r) => r.trigger },
      { label: 'status', value: (r) => r.status },
      { label: 'events purged', value: (r) => r.eventsPurged },
      { label: 'profiles erased', value: (r) => r.profilesErased },
      { label: 'id', value: (r) => r.id },
    ], runs.value.items || [])));
}

// ---- Routing -----------------------------------------------------------------------------------------------------------

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

let renderGeneration = 0;

// Renders the view the fragment names. A render that a later one (another click) overtook changes nothing.
// view.dataset.ready is the fragment rendered once done (tests wait for it).
async function render() {
  const generation = ++renderGeneration;
  const hash = location.hash || '#/overview';
  const [path, search] = hash.slice(1).split('?');
  const params = new URLSearchParams(search || '');
  const parts = path.split('/').filter(Boolean);
  const name = parts[0] || 'overview';
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.view === name || a.dataset.view + 's' === name ||
                                 (a.dataset.view === 'profiles' && name === 'profile') ||
                                 (a.dataset.view === 'segments' && name === 'segment') ||
                                 (a.dataset.view === 'audiences' && name === 'audience'));
  }
  clearError();
  notice.hidden = true;
  delete view.dataset.ready;
  view.replaceChildren(el('p', { class: 'muted' }, 'Loading...'));
  let content = [];
  let failure = null;
  try {
    if (name === 'profiles') content = await profiles(params);
    else if (name === 'profile') content = await profile(decodeURIComponent(parts[1] || ''));
    else if (name === 'segments') content = await segments();
    else if (name === 'segment') content = await segment(decodeURIComponent(parts[1] || ''), params);
    else if (name === 'identity') content = await identityView(params);
    else if (name === 'audiences') content = await audiences();
    else if (name === 'audience') content = await audience(decodeURIComponent(parts[1] || ''), params);
    else if (name === 'audit') content = await audit(params);
    else if (name === 'privacy') content = await privacyView(params);
    else if (name === 'analytics') content = await analytics(params);
    else content = await overview();
  } catch (err) {
    failure = err;
  }
  if (generation !== renderGeneration) return;
  view.replaceChildren(...content.filter(Boolean));
  if (failure) showError(failure);
  if (pendingNotice) {
    notice.textContent = pendingNotice;
    notice.hidden = false;
    pendingNotice = '';
  }
  view.dataset.ready = hash;
}

let whoAmIGeneration = 0;

async function whoAmI() {
  const generation = ++whoAmIGeneration;
  const out = document.getElementById('principal');
  let text = '';
  try {
    const access = await api('GET', '/api/cdp/governance/access');
    text = access && access.principal ? 'as ' + access.principal : '';
  } catch (err) {
    text = '';
  }
  if (generation === whoAmIGeneration) out.textContent = text;
}

document.getElementById('api-key').value = state.key;
document.getElementById('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.key = document.getElementById('api-key').value.trim();
  sessionStorage.setItem('cdp-key', state.key);
  whoAmI();
  render();
});
window.addEventListener('hashchange', () => {
  if (takeKeyFromFragment()) {
    state.key = sessionStorage.getItem('cdp-key') || '';
    document.getElementById('api-key').value = state.key;
    whoAmI();
  }
  render();
});
whoAmI();
render();
