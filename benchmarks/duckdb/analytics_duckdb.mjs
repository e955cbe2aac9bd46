// analytics_duckdb.mjs: analytics_bench's funnel, cohort matrix and last-touch attribution computed by DuckDB in
// SQL from the same events, checked against libcdp's answers and timed side by side with libcdp's timings of the
// same run (issue 6). Usually started by run-analytics.sh.
//
//   node analytics_duckdb.mjs --data=DIR [--threads=1] [--runs=5]
//
// DIR is what `analytics_bench --dump=DIR` wrote: events.csv, expected.json (requests and libcdp's answers) and
// libcdp.json (libcdp's timings). The SQL is what a careful analyst would write for the semantics of
// docs/analytics.md: the funnel's earliest next step by ASOF joins (the first later event of the step's type), the
// cohorts by date_trunc('week'), a session's touch by its first event, last touch by an ASOF join. One warm-up run,
// then timed runs, median reported. Exits 1 when an answer differs from libcdp's, 2 on any other failure.

import { DuckDBInstance } from '@duckdb/node-api';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

process.on('uncaughtException', (e) => {
  console.error(e);
  process.exit(2);
});

const args = {};
for (const a of process.argv.slice(2)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(a);
  if (!m) {
    console.error(`usage: node analytics_duckdb.mjs --data=DIR [--threads=1] [--runs=5]  (bad: ${a})`);
    process.exit(2);
  }
  args[m[1]] = m[2];
}
if (!args.data) {
  console.error('usage: node analytics_duckdb.mjs --data=DIR [--threads=1] [--runs=5]');
  process.exit(2);
}
const dir = resolve(args.data);
const threads = String(args.threads ?? '1');
const runs = Number(args.runs ?? 5);
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
const libcdp = JSON.parse(readFileSync(join(dir, 'libcdp.json'), 'utf8'));

const DAY = 86400n * 1000000n;
const WINDOW = 7n * DAY;
const LOOKBACK = 30n * DAY;

const FUNNEL = `
WITH e1 AS (SELECT ordinal, time_us AS t1 FROM events WHERE type = 'page_view'),
     e2 AS (SELECT ordinal, time_us FROM events WHERE type = 'product_view'),
     e3 AS (SELECT ordinal, time_us FROM events WHERE type = 'add_to_cart'),
     e4 AS (SELECT ordinal, time_us FROM events WHERE type = 'purchase'),
     s2 AS (SELECT e1.ordinal, e1.t1, CASE WHEN e2.time_us <= e1.t1 + ${WINDOW} THEN e2.time_us END AS t2
            FROM e1 ASOF LEFT JOIN e2 ON e1.ordinal = e2.ordinal AND e2.time_us > e1.t1),
     s3 AS (SELECT s2.*, CASE WHEN e3.time_us <= s2.t1 + ${WINDOW} THEN e3.time_us END AS t3
            FROM s2 ASOF LEFT JOIN e3 ON s2.ordinal = e3.ordinal AND e3.time_us > s2.t2),
     s4 AS (SELECT s3.*, CASE WHEN e4.time_us <= s3.t1 + ${WINDOW} THEN e4.time_us END AS t4
            FROM s3 ASOF LEFT JOIN e4 ON s3.ordinal = e4.ordinal AND e4.time_us > s3.t3),
     depth AS (SELECT *, 1 + (t2 IS NOT NULL)::INT + (t3 IS NOT NULL)::INT + (t4 IS NOT NULL)::INT AS d FROM s4),
     best AS (SELECT * FROM depth QUALIFY row_number() OVER (PARTITION BY ordinal ORDER BY d DESC, t1) = 1)
SELECT count(*) AS p1, count(*) FILTER (d >= 2) AS p2, count(*) FILTER (d >= 3) AS p3, count(*) FILTER (d >= 4) AS p4,
       median((t2 - t1) / 1e6) FILTER (d >= 2) AS m2, median((t3 - t2) / 1e6) FILTER (d >= 3) AS m3,
       median((t4 - t3) / 1e6) FILTER (d >= 4) AS m4
FROM best`;

const COHORTS = `
WITH first AS (SELECT ordinal, date_trunc('week', make_timestamp(min(time_us))) AS week FROM events GROUP BY ordinal),
     sizes AS (SELECT week, count(*) AS size FROM first GROUP BY week),
     ret AS (SELECT DISTINCT f.ordinal, f.week,
                    (epoch_us(date_trunc('week', make_timestamp(e.time_us))) - epoch_us(f.week)) // ${7n * DAY} AS k
             FROM first f JOIN events e ON e.ordinal = f.ordinal WHERE e.type = 'purchase'),
     counts AS (SELECT week, k, count(*) AS n FROM ret WHERE k BETWEEN 0 AND 11 GROUP BY week, k)
SELECT strftime(s.week, '%Y-%m-%dT%H:%M:%S.000Z') AS cohort, s.size,
       list(c.n ORDER BY c.k) FILTER (c.k IS NOT NULL) AS ns, list(c.k ORDER BY c.k) FILTER (c.k IS NOT NULL) AS ks
FROM sizes s LEFT JOIN counts c ON c.week = s.week GROUP BY s.week, s.size ORDER BY s.week`;

const ATTRIBUTION = `
WITH touches AS (SELECT ordinal, min(time_us) AS ts, first(utm_source ORDER BY time_us) AS src,
                        first(utm_medium ORDER BY time_us) AS med, first(utm_campaign ORDER BY time_us) AS camp
                 FROM events GROUP BY ordinal, session),
     conv AS (SELECT ordinal, time_us AS t, coalesce(revenue, 0) AS revenue FROM events WHERE type = 'purchase'),
     last AS (SELECT conv.*, touches.ts, touches.src, touches.med, touches.camp
              FROM conv ASOF LEFT JOIN touches ON conv.ordinal = touches.ordinal AND touches.ts <= conv.t)
SELECT coalesce(src, '(direct)') AS source, coalesce(med, '(none)') AS medium, coalesce(camp, '(none)') AS campaign,
       count(*) AS conversions, sum(revenue) AS revenue
FROM last WHERE ts IS NOT NULL AND ts >= t - ${LOOKBACK} GROUP BY ALL`;

const instance = await DuckDBInstance.create(':memory:', { threads });
const db = await instance.connect();
const version = (await db.runAndReadAll('SELECT version() AS v')).getRowObjectsJS()[0].v;
let s = performance.now();
await db.run(`CREATE TABLE events AS SELECT * FROM read_csv('${join(dir, 'events.csv').replaceAll("'", "''")}',
  header = true, columns = {'ordinal': 'UINTEGER', 'type': 'VARCHAR', 'time_us': 'BIGINT', 'session': 'UBIGINT',
  'utm_source': 'VARCHAR', 'utm_medium': 'VARCHAR', 'utm_campaign': 'VARCHAR', 'revenue': 'DOUBLE'})`);
const loadS = (performance.now() - s) / 1e3;
const count = (await db.runAndReadAll('SELECT count(*) AS n FROM events')).getRowObjectsJS()[0].n;
console.log(`DuckDB ${version}, threads=${threads}: ${count} events loaded in ${loadS.toFixed(1)} s`);

async function measure(sql) {
  let rows;
  const ms = [];
  for (let i = 0; i <= runs; ++i) {
    const t0 = performance.now();
    rows = (await db.runAndReadAll(sql)).getRowObjectsJS();
    if (i > 0) ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { rows, median: ms[Math.floor(ms.length / 2)] };
}

let mismatches = 0;
function check(what, got, want) {
  const same = typeof want === 'number' ? Math.abs(Number(got) - want) <= 1e-6 * Math.max(1, Math.abs(want))
                                        : JSON.stringify(got) === JSON.stringify(want);
  if (!same) {
    ++mismatches;
    console.log(`MISMATCH ${what}: DuckDB ${JSON.stringify(got)}, libcdp ${JSON.stringify(want)}`);
  }
}

const funnel = await measure(FUNNEL);
const fr = funnel.rows[0];
const fs = expected.funnel.answer.steps;
[fr.p1, fr.p2, fr.p3, fr.p4].forEach((p, k) => check(`funnel step ${k + 1} profiles`, Number(p), fs[k].profiles));
[fr.m2, fr.m3, fr.m4].forEach((m, k) => check(`funnel step ${k + 2} median`, m, fs[k + 1].medianSecondsFromPrevious));

const cohorts = await measure(COHORTS);
const want = expected.cohorts.answer.cohorts;
check('cohort count', cohorts.rows.length, want.length);
cohorts.rows.forEach((r, i) => {
  const counts = new Array(12).fill(0);
  (r.ks ?? []).forEach((k, j) => { counts[Number(k)] = Number(r.ns[j]); });
  check(`cohort ${r.cohort}`, [r.cohort, Number(r.size), counts], [want[i]?.cohort, want[i]?.size, want[i]?.counts]);
});

const attribution = await measure(ATTRIBUTION);
const byChannel = new Map(expected.attribution.answer.channels.map((c) => [`${c.source}/${c.medium}/${c.campaign}`, c]));
check('attribution channels', attribution.rows.length, byChannel.size);
for (const r of attribution.rows) {
  const c = byChannel.get(`${r.source}/${r.medium}/${r.campaign}`);
  check(`attribution ${r.source}/${r.medium}/${r.campaign} conversions`, Number(r.conversions), c?.conversions);
  check(`attribution ${r.source}/${r.medium}/${r.campaign} revenue`, r.revenue, c?.revenue);
}

console.log('');
console.log('measure                          libcdp ms   DuckDB ms   DuckDB / libcdp');
for (const [name, d] of [['funnel (4 steps, 7d window)', funnel], ['cohorts (12 weeks)', cohorts],
                         ['attribution (last touch, 30d)', attribution]]) {
  const key = name.split(' ')[0];
  const l = libcdp[key].median_ms;
  console.log(`${name.padEnd(32)} ${l.toFixed(1).padStart(9)}   ${d.median.toFixed(1).padStart(9)}   ` +
              `${(d.median / l).toFixed(2).padStart(6)}`);
}
console.log(mismatches === 0 ? 'every answer equal to libcdp\'s' : `${mismatches} answers differ`);
process.exit(mismatches === 0 ? 0 : 1);
