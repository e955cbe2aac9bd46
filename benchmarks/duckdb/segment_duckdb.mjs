// segment_duckdb.mjs: segment_bench's measured memberships computed by DuckDB from the same data, side by side
// with libcdp's timings of the same run (issue 4). Usually started by run.sh.
//
//   node segment_duckdb.mjs --data=DIR [--threads=1] [--runs=7] [--out=FILE]
//
// DIR is what `segment_bench --dump=DIR` wrote: profiles.csv, events.csv, seg_a.csv, seg_b.csv, expected.json (the
// rules, "now" and the member counts libcdp's index computed) and libcdp.json (libcdp's timings in that run).
//
// 1. Loads the CSV files into DuckDB tables (in memory), timed apart from the queries.
// 2. Translates each rule of expected.json into SQL (translateRule below: field conditions become predicates on
//    `profiles`, a behavioural condition a semi-join or anti-join on `events`) and runs it: one warm-up, then timed
//    runs, median reported.
//      (a) full evaluation: the 3 field + 1 behavioural rule as SQL text, parsed, planned and run each time
//          (libcdp: Prepare once, Evaluate timed); also as a prepared statement with `now` as its parameter, which
//          is the closer analogue of libcdp's Prepare (both reported).
//      (b) unsaved rule count: the 7 rules of segment_bench, SQL text translated, parsed, planned and run each time
//          (libcdp: parse + Prepare + Count timed).
//      (c) overlap of the two 1,000,000-member segments, each a table of its members' ordinals: |A|, |B|, the
//          intersection by a semi-join, union = |A| + |B| - intersection and Jaccard, as libcdp's Compare does
//          (libcdp: Compare and the intersection bitmap). Also, for reference, the same counts when both segments
//          are boolean columns of one table (one row per profile in either), where one scan answers.
// 3. Checks every DuckDB count against libcdp's; exits 1 on any difference.
// 4. Prints the side-by-side table: measure, libcdp ms, DuckDB ms, DuckDB / libcdp.

import { DuckDBInstance, DuckDBTimestampValue } from '@duckdb/node-api';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

// Exit 2 on any failure other than a count mismatch (exit 1).
process.on('uncaughtException', (e) => {
  console.error(e);
  process.exit(2);
});

// ---- arguments ------------------------------------------------------------------------------------------------------

const args = {};
for (const a of process.argv.slice(2)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(a);
  if (!m) {
    console.error(`usage: node segment_duckdb.mjs --data=DIR [--threads=1] [--runs=7] [--out=FILE]  (bad: ${a})`);
    process.exit(2);
  }
  args[m[1]] = m[2];
}
if (!args.data) {
  console.error('usage: node segment_duckdb.mjs --data=DIR [--threads=1] [--runs=7] [--out=FILE]');
  process.exit(2);
}
const dir = resolve(args.data);
const threads = String(args.threads ?? '1');
const runs = Number(args.runs ?? 7);
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
const libcdpFile = join(dir, 'libcdp.json');
const libcdp = existsSync(libcdpFile) ? JSON.parse(readFileSync(libcdpFile, 'utf8')) : null;

// ---- rule -> SQL ----------------------------------------------------------------------------------------------------

// Rule field paths -> columns of the tables below.
const PROFILE_COLUMNS = {
  'attributes.country': 'country',
  'attributes.city': 'city',
  'attributes.tags': 'tags',
  'attributes.customFields.tier': 'tier',
  'computed.ltv': 'ltv',
  'computed.purchaseCount': 'purchase_count',
  'computed.lastPurchaseDate': 'last_purchase_date',
  'computed.churnRisk': 'churn_risk',
  'consent.email': 'consent_email',
  'consent.sms': 'consent_sms',
  createdAt: 'created_at',
};
const EVENT_COLUMNS = { 'properties.revenue': 'revenue', 'properties.category': 'category' };
const TIME_COLUMNS = new Set(['last_purchase_date', 'created_at']);
const LIST_COLUMNS = new Set(['tags']);
const UNIT_MICROS = { s: 1000000n, m: 60000000n, h: 3600000000n, d: 86400000000n, w: 604800000000n };

function unsupported(what) {
  throw new Error(`rule translation: ${what} is not supported by this benchmark's translator`);
}

function durationMicros(text) {
  const m = /^(\d+)([smhdw])$/.exec(text);
  if (!m) unsupported(`duration ${JSON.stringify(text)}`);
  return BigInt(m[1]) * UNIT_MICROS[m[2]];
}

function literal(v) {
  if (typeof v === 'string') return `'${v.replaceAll("'", "''")}'`;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return unsupported(`value ${JSON.stringify(v)}`);
}

// A relative date ("-90d", "now") as a TIMESTAMP expression; libcdp resolves it as now + offset, exactly.
function instant(v, now) {
  if (v === 'now') return now;
  const m = typeof v === 'string' ? /^([-+])(\d+[smhdw])$/.exec(v) : null;
  if (!m) return unsupported(`instant ${JSON.stringify(v)} (only relative dates)`);
  return `(${now} ${m[1]} to_microseconds(${durationMicros(m[2])}))`;
}

// One field condition. Absent values: libcdp's != and not_in hold for them, the other operators do not.
function field(c, columns, now) {
  const col = columns[c.field];
  if (!col) unsupported(`field ${c.field}`);
  const v = c.value;
  const value = TIME_COLUMNS.has(col) ? instant(v, now) : Array.isArray(v) ? null : literal(v);
  if (LIST_COLUMNS.has(col)) {
    switch (c.operator) {
      case 'contains':
        return `list_contains(${col}, ${value})`;
      case 'in':
        return `list_has_any(${col}, [${v.map(literal).join(', ')}])`;
      case 'starts_with':
        return `len(list_filter(${col}, x -> starts_with(x, ${value}))) > 0`;
      default:
        return unsupported(`operator ${c.operator} on a list`);
    }
  }
  switch (c.operator) {
    case '=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return `${col} ${c.operator} ${value}`;
    case '!=':
      return `(${col} IS NULL OR ${col} <> ${value})`;
    case 'in':
      return `${col} IN (${v.map(literal).join(', ')})`;
    case 'not_in':
      return `(${col} IS NULL OR ${col} NOT IN (${v.map(literal).join(', ')}))`;
    case 'contains':
      return `contains(${col}, ${value})`;
    case 'starts_with':
      return `starts_with(${col}, ${value})`;
    case 'exists':
      return `${col} IS NOT NULL`;
    case 'not_exists':
      return `${col} IS NULL`;
    default:
      return unsupported(`operator ${c.operator}`);
  }
}

// A count test ({">=": 1}) on n; all terms must hold.
function countTest(test) {
  const ops = { '>=': (a, b) => a >= b, '>': (a, b) => a > b, '<=': (a, b) => a <= b, '<': (a, b) => a < b,
    '=': (a, b) => a === b, '!=': (a, b) => a !== b };
  const terms = Object.entries(test);
  for (const [op, v] of terms) if (!ops[op] || typeof v !== 'number') unsupported(`count test ${JSON.stringify(test)}`);
  return {
    holds: (n) => terms.every(([op, v]) => ops[op](n, v)),
    sql: (x) => terms.map(([op, v]) => `${x} ${op === '!=' ? '<>' : op} ${v}`).join(' AND '),
  };
}

// A behavioural condition: the profiles with matching events, as an IN (semi-join) or, when the test holds for
// profiles with no matching event (count = 0, < n...), as a NOT IN of those the test fails for.
function behavioural(c, now) {
  for (const k of Object.keys(c)) {
    if (!['event', 'where', 'within', 'count'].includes(k)) unsupported(`behavioural key ${k}`);
  }
  const where = [`type = ${literal(c.event)}`];
  for (const w of c.where ?? []) where.push(node(w, EVENT_COLUMNS, now));
  if (c.within !== undefined) {
    if (typeof c.within === 'string') {
      where.push(`time BETWEEN ${now} - to_microseconds(${durationMicros(c.within)}) AND ${now}`);
    } else {
      if (c.within.from !== undefined) where.push(`time >= ${instant(c.within.from, now)}`);
      if (c.within.to !== undefined) where.push(`time <= ${instant(c.within.to, now)}`);
    }
  }
  const test = countTest(c.count ?? { '>=': 1 });
  const matching = `SELECT ordinal FROM events WHERE ${where.join(' AND ')}`;
  if (!test.holds(0)) {
    // "at least one" needs no count: a plain semi-join.
    const any = [1, 2, 3, 100, 1e9].every((n) => test.holds(n));
    if (any) return `ordinal IN (${matching})`;
    return `ordinal IN (${matching} GROUP BY ordinal HAVING ${test.sql('count(*)')})`;
  }
  return `ordinal NOT IN (${matching} GROUP BY ordinal HAVING NOT (${test.sql('count(*)')}))`;
}

function node(c, columns, now) {
  if (c.conditions !== undefined || (c.operator !== undefined && c.field === undefined)) {
    const op = (c.operator ?? 'AND').toUpperCase();
    const parts = c.conditions.map((x) => `(${node(x, columns, now)})`);
    if (op === 'AND') return parts.join(' AND ');
    if (op === 'OR') return parts.join(' OR ');
    if (op === 'NOT') return `NOT (${parts.join(' AND ')})`;
    return unsupported(`group operator ${op}`);
  }
  if (c.not !== undefined) return `NOT (${node(c.not, columns, now)})`;
  if (c.event !== undefined) {
    if (columns !== PROFILE_COLUMNS) unsupported('a behavioural condition inside where');
    return behavioural(c, now);
  }
  if (c.field !== undefined) return field(c, columns, now);
  return unsupported(`condition ${JSON.stringify(c)}`);
}

// The member count of a rule at `now` (an SQL TIMESTAMP expression).
function translateRule(rule, now) {
  return `SELECT count(*) AS n FROM profiles WHERE ${node(rule, PROFILE_COLUMNS, now)}`;
}

// The fastest of the forms tried on this data (FULL OUTER JOIN, inner join, INTERSECT, UNION ALL + GROUP BY were
// 1.1x to 2.6x slower on these two segments, threads=1).
const OVERLAP_SQL = `WITH c AS (
  SELECT (SELECT count(*) FROM seg_a) AS a, (SELECT count(*) FROM seg_b) AS b,
         (SELECT count(*) FROM seg_a WHERE ordinal IN (SELECT ordinal FROM seg_b)) AS intersection)
SELECT a, b, intersection, a + b - intersection AS union_size, intersection::DOUBLE / (a + b - intersection) AS jaccard
FROM c`;
const OVERLAP_FLAGS_SQL = `SELECT count(*) FILTER (WHERE in_a) AS a, count(*) FILTER (WHERE in_b) AS b,
       count(*) FILTER (WHERE in_a AND in_b) AS intersection, count(*) AS union_size,
       (count(*) FILTER (WHERE in_a AND in_b))::DOUBLE / count(*) AS jaccard
FROM seg_flags`;

// ---- helpers --------------------------------------------------------------------------------------------------------

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

let mismatches = 0;
function check(what, got, want) {
  const ok = typeof want === 'number' && !Number.isInteger(want) ? Math.abs(got - want) < 1e-12 : got === want;
  if (!ok) {
    mismatches++;
    console.error(`MISMATCH ${what}: DuckDB ${got}, libcdp ${want}`);
  }
}

async function timed(fn) {
  const s = performance.now();
  const reader = await fn();
  const ms = performance.now() - s;
  return { ms, row: reader.getRowObjectsJS()[0] };
}

// ---- run ------------------------------------------------------------------------------------------------------------

const instance = await DuckDBInstance.create(':memory:', { threads });
const db = await instance.connect();
const version = (await db.runAndReadAll('SELECT version() AS v')).getRowObjectsJS()[0].v;
console.log(`DuckDB ${version}, threads=${threads}, data ${dir}: ${expected.profiles} profiles, ${expected.events} events`);

const csv = (name) => `'${join(dir, name).replaceAll("'", "''")}'`;
const load = {};
let s = performance.now();
await db.run(`CREATE TABLE profiles AS
  SELECT ordinal, country, city, coalesce(string_split(tags, '|'), []::VARCHAR[]) AS tags, tier, ltv, purchase_count,
         make_timestamp(last_purchase_date_us) AS last_purchase_date, churn_risk, consent_email, consent_sms,
         make_timestamp(created_at_us) AS created_at
  FROM read_csv(${csv('profiles.csv')}, header = true, columns = {
    'ordinal': 'UINTEGER', 'country': 'VARCHAR', 'city': 'VARCHAR', 'tags': 'VARCHAR', 'tier': 'INTEGER',
    'ltv': 'DOUBLE', 'purchase_count': 'INTEGER', 'last_purchase_date_us': 'BIGINT', 'churn_risk': 'DOUBLE',
    'consent_email': 'BOOLEAN', 'consent_sms': 'BOOLEAN', 'created_at_us': 'BIGINT'})`);
load.profiles_s = (performance.now() - s) / 1e3;
s = performance.now();
await db.run(`CREATE TABLE events AS
  SELECT ordinal, type, make_timestamp(time_us) AS time, revenue, category
  FROM read_csv(${csv('events.csv')}, header = true, columns = {
    'ordinal': 'UINTEGER', 'type': 'VARCHAR', 'time_us': 'BIGINT', 'revenue': 'DOUBLE', 'category': 'VARCHAR'})`);
load.events_s = (performance.now() - s) / 1e3;
s = performance.now();
for (const t of ['seg_a', 'seg_b']) {
  await db.run(`CREATE TABLE ${t} AS SELECT ordinal FROM read_csv(${csv(t + '.csv')}, header = true,
    columns = {'ordinal': 'UINTEGER'})`);
}
load.segments_s = (performance.now() - s) / 1e3;
s = performance.now();
await db.run(`CREATE TABLE seg_flags AS
  SELECT coalesce(a.ordinal, b.ordinal) AS ordinal, a.ordinal IS NOT NULL AS in_a, b.ordinal IS NOT NULL AS in_b
  FROM seg_a a FULL OUTER JOIN seg_b b ON a.ordinal = b.ordinal ORDER BY 1`);
load.segment_flags_s = (performance.now() - s) / 1e3;
const sizes = (await db.runAndReadAll('SELECT (SELECT count(*) FROM profiles) AS p, (SELECT count(*) FROM events) AS e'))
  .getRowObjectsJS()[0];
check('profiles loaded', Number(sizes.p), expected.profiles);
check('events loaded', Number(sizes.e), expected.events);
const memory = (await db.runAndReadAll('SELECT sum(memory_usage_bytes) AS b FROM duckdb_memory()')).getRowObjectsJS()[0];
const memoryMiB = Number(memory.b) / 2 ** 20;
console.log(`loaded: profiles ${load.profiles_s.toFixed(2)} s, events ${load.events_s.toFixed(2)} s, ` +
  `segments ${load.segments_s.toFixed(2)} s; DuckDB memory ${memoryMiB.toFixed(0)} MiB, ` +
  `process RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);

const nowUs = BigInt(expected.now_us);
const nowLiteral = `make_timestamp(${nowUs})`;
const results = { version, threads: Number(threads), load, memory_mib: memoryMiB };

// (a) full evaluation: as SQL text each time; and prepared once, `now` bound, executed.
{
  const text = translateRule(expected.full.rule, nowLiteral);
  const times = [];
  for (let i = 0; i <= runs; i++) {
    const r = await timed(() => db.runAndReadAll(text));
    check(`full rule count, SQL text (run ${i})`, Number(r.row.n), expected.full.count);
    if (i > 0) times.push(r.ms);
  }
  results.full = { median_ms: median(times), runs_ms: times, sql: text };
  const sql = translateRule(expected.full.rule, '$1::TIMESTAMP');
  const prepared = await db.prepare(sql);
  prepared.bindTimestamp(1, new DuckDBTimestampValue(nowUs));
  const preparedTimes = [];
  for (let i = 0; i <= runs; i++) {
    const r = await timed(() => prepared.runAndReadAll());
    check(`full rule count, prepared (run ${i})`, Number(r.row.n), expected.full.count);
    if (i > 0) preparedTimes.push(r.ms);
  }
  results.full_prepared = { median_ms: median(preparedTimes), runs_ms: preparedTimes, sql };
  console.log(`(a) full evaluation: ${expected.full.count} members; SQL text median ${results.full.median_ms.toFixed(2)} ` +
    `ms, prepared median ${results.full_prepared.median_ms.toFixed(2)} ms\n${text}`);
}

// (b) unsaved rules: translate + parse + plan + run, each of segment_bench's rules; one warm-up round, then
// `rounds` timed rounds.
{
  const rounds = 3;
  const times = [];
  for (let round = 0; round <= rounds; round++) {
    for (const [i, u] of expected.unsaved.entries()) {
      const s0 = performance.now();
      const sql = translateRule(u.rule, nowLiteral);
      const reader = await db.runAndReadAll(sql);
      const ms = performance.now() - s0;
      check(`unsaved rule ${i} count (round ${round})`, Number(reader.getRowObjectsJS()[0].n), u.count);
      if (round > 0) times.push(ms);
    }
  }
  results.unsaved = { median_ms: median(times), runs_ms: times, sql: translateRule(expected.unsaved[0].rule, nowLiteral) };
  console.log(`(b) unsaved rule count: ${expected.unsaved.map((u) => u.count).join(', ')} members; median of ` +
    `${times.length} ${results.unsaved.median_ms.toFixed(2)} ms\n${results.unsaved.sql}`);
}

// (c) overlap of the two segments: member tables, then boolean columns.
for (const [key, sql] of [['overlap', OVERLAP_SQL], ['overlap_flags', OVERLAP_FLAGS_SQL]]) {
  const times = [];
  for (let i = 0; i <= 3 * runs; i++) {
    const r = await timed(() => db.runAndReadAll(sql));
    const o = expected.overlap;
    check(`${key} |A| (run ${i})`, Number(r.row.a), o.a);
    check(`${key} |B| (run ${i})`, Number(r.row.b), o.b);
    check(`${key} intersection (run ${i})`, Number(r.row.intersection), o.intersection);
    check(`${key} union (run ${i})`, Number(r.row.union_size), o.union);
    check(`${key} jaccard (run ${i})`, Number(r.row.jaccard), o.jaccard);
    if (i > 0) times.push(r.ms);
  }
  results[key] = { median_ms: median(times), runs_ms: times, sql };
  console.log(`(c) ${key}: |A| ${expected.overlap.a} |B| ${expected.overlap.b} intersection ` +
    `${expected.overlap.intersection} union ${expected.overlap.union} jaccard ${expected.overlap.jaccard.toFixed(4)}; ` +
    `median of ${times.length} ${results[key].median_ms.toFixed(2)} ms`);
}

results.counts_match = mismatches === 0;
if (args.out) writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n');

// ---- the side-by-side table -----------------------------------------------------------------------------------------

if (libcdp) {
  const rows = [
    ['(a) full evaluation, 3 field + 1 behavioural', libcdp.full.median_ms, results.full.median_ms],
    ['    DuckDB as a prepared statement, now bound', libcdp.full.median_ms, results.full_prepared.median_ms],
    ['(b) count of an unsaved rule (parse + prepare + count)', libcdp.unsaved.median_ms, results.unsaved.median_ms],
    ['(c) overlap of two 1M-member segments', libcdp.overlap.median_ms, results.overlap.median_ms],
    ['    DuckDB with both as boolean columns of one table', libcdp.overlap.median_ms, results.overlap_flags.median_ms],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`\n${expected.profiles} profiles, ${expected.events} events; DuckDB ${version}, threads=${threads}; ` +
    `libcdp: ${libcdp?.threads === 2 ? 'two threads' : 'one thread'}, timings of the segment_bench run that wrote this data`);
  console.log(`| ${'measure'.padEnd(w)} | libcdp ms | DuckDB ms | DuckDB / libcdp |`);
  console.log(`| ${'-'.repeat(w)} | --------- | --------- | --------------- |`);
  for (const [what, l, d] of rows) {
    console.log(`| ${what.padEnd(w)} | ${l.toFixed(3).padStart(9)} | ${d.toFixed(3).padStart(9)} | ` +
      `${(d / l).toFixed(1).padStart(14)}x |`);
  }
  console.log(`load (not comparable: libcdp from generated documents in memory, DuckDB from CSV files): libcdp ` +
    `${(libcdp.load_profiles_s + libcdp.load_events_s).toFixed(1)} s, DuckDB ` +
    `${(load.profiles_s + load.events_s).toFixed(1)} s (segments ${load.segments_s.toFixed(1)} s, as columns ` +
    `${load.segment_flags_s.toFixed(1)} s more); memory: libcdp index ` +
    `${libcdp.index_memory_mib.toFixed(0)} MiB, DuckDB tables ${memoryMiB.toFixed(0)} MiB`);
}

if (mismatches > 0) {
  console.error(`FAILED: ${mismatches} DuckDB count(s) differ from libcdp's`);
  process.exit(1);
}
console.log('all DuckDB counts equal libcdp\'s');
