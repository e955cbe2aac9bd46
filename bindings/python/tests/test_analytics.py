"""Analytics (issue 6) against an independent SQL implementation: the same generated events loaded into SQLite,
funnel, cohort and attribution results computed there with SQL, and required to equal libcdp's numbers."""

import datetime as dt
import random
import sqlite3
import statistics

import pytest

import cdp

DAY_MS = 86_400_000
START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)  # a Monday
UTMS = [None, ("google", "cpc", "spring"), ("news", "email", "weekly"), ("fb", "social", "spring")]


def iso(ms):
    return (START + dt.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(seed=7, people=150):
    """Sessions of page views, product views, carts and purchases over 8 weeks, with UTM sources; distinct times."""
    rng = random.Random(seed)
    events, used = [], set()
    for p in range(people):
        t = rng.randrange(0, 20 * DAY_MS)
        for _ in range(rng.randrange(1, 6)):
            utm = rng.choice(UTMS)
            steps = ["page_view", "product_view", "add_to_cart", "purchase"][: rng.choice([1, 2, 2, 3, 3, 4])]
            if rng.random() < 0.15:
                rng.shuffle(steps)  # out of order
            for k, type_ in enumerate(steps):
                while t in used:
                    t += 1
                used.add(t)
                props = {}
                if k == 0 and utm:
                    props.update(utm_source=utm[0], utm_medium=utm[1], utm_campaign=utm[2])
                if type_ == "purchase":
                    props["revenue"] = rng.randrange(5, 200)
                events.append({"customerId": f"c{p}", "type": type_, "timestamp": iso(t), "properties": props})
                t += rng.randrange(60_000, 3 * 3_600_000)
            t += rng.randrange(1, 9) * DAY_MS  # the next visit: a new session
    return events


@pytest.fixture
def loaded(db):
    events = generate()
    for i in range(0, len(events), 400):  # under max_batch_items
        result = db.events.track_batch(events[i:i + 400])
        assert result["rejected"] == 0, [r for r in result["results"] if r["status"] != "ok"][:3]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE e (profile TEXT, type TEXT, t INTEGER, session TEXT, src TEXT, med TEXT, camp TEXT,"
                 " revenue REAL)")
    rows = 0
    for e in db.events.query_all():
        t = int(dt.datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
                .replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
        p = e.get("properties") or {}
        conn.execute("INSERT INTO e VALUES (?,?,?,?,?,?,?,?)",
                     (e["profileId"], e["type"], t, e["sessionId"], p.get("utm_source"), p.get("utm_medium"),
                      p.get("utm_campaign"), p.get("revenue")))
        rows += 1
    assert rows == len(events)
    return db, conn


def to_ms(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_funnel_equals_sql(loaded):
    db, conn = loaded
    window, lo, hi = 2 * DAY_MS, to_ms(iso(3 * DAY_MS)), to_ms(iso(40 * DAY_MS))
    answer = db.analytics.funnel(["product_view", "add_to_cart", "purchase"], window="2d", since=iso(3 * DAY_MS),
                                 until=iso(40 * DAY_MS), as_frame=False)
    # Each entry's earliest step 2 and 3 (strictly later, within the window of the entry), in SQL.
    entries = conn.execute("""
        WITH e1 AS (SELECT profile, t AS t1 FROM e WHERE type = 'product_view' AND t BETWEEN ? AND ?),
             e2 AS (SELECT e1.profile, e1.t1, (SELECT MIN(t) FROM e x WHERE x.profile = e1.profile
                      AND x.type = 'add_to_cart' AND x.t > e1.t1 AND x.t <= e1.t1 + ?) AS t2 FROM e1),
             e3 AS (SELECT e2.*, (SELECT MIN(t) FROM e x WHERE x.profile = e2.profile AND x.type = 'purchase'
                      AND e2.t2 IS NOT NULL AND x.t > e2.t2 AND x.t <= e2.t1 + ?) AS t3 FROM e2)
        SELECT profile, t1, t2, t3, 1 + (t2 IS NOT NULL) + (t3 IS NOT NULL) AS depth FROM e3
        ORDER BY profile, t1""", (lo, hi, window, window)).fetchall()
    best = {}
    for profile, t1, t2, t3, depth in entries:  # the earliest entry reaching the deepest step
        if profile not in best or depth > best[profile][3]:
            best[profile] = (t1, t2, t3, depth)
    steps = answer["steps"]
    for k in range(3):
        assert steps[k]["profiles"] == sum(1 for b in best.values() if b[3] > k)
    gaps1 = [(b[1] - b[0]) / 1000 for b in best.values() if b[3] > 1]
    gaps2 = [(b[2] - b[1]) / 1000 for b in best.values() if b[3] > 2]
    assert steps[0]["profiles"] > 50 and steps[2]["profiles"] > 5, steps
    assert steps[1]["medianSecondsFromPrevious"] == pytest.approx(statistics.median(gaps1), abs=1e-6)
    assert steps[2]["medianSecondsFromPrevious"] == pytest.approx(statistics.median(gaps2), abs=1e-6)
    assert steps[2]["conversionFromFirst"] == pytest.approx(steps[2]["profiles"] / steps[0]["profiles"])
    frame = db.analytics.funnel(["product_view", "add_to_cart", "purchase"], window="2d", since=iso(3 * DAY_MS),
                                until=iso(40 * DAY_MS))
    assert list(frame["profiles"]) == [s["profiles"] for s in steps]


def test_cohorts_equal_sql(loaded):
    db, conn = loaded
    answer = db.analytics.cohorts(return_event="purchase", period="week", periods=6, as_frame=False)
    rows = conn.execute("""
        WITH first AS (SELECT profile, MIN(t) AS t0 FROM e GROUP BY profile),
             cohort AS (SELECT profile, date(t0 / 1000, 'unixepoch', '-6 days', 'weekday 1') AS week FROM first),
             ret AS (SELECT DISTINCT c.profile, c.week, CAST((julianday(date(x.t / 1000, 'unixepoch', '-6 days',
                        'weekday 1')) - julianday(c.week)) / 7 AS INTEGER) AS k
                     FROM cohort c JOIN e x ON x.profile = c.profile AND x.type = 'purchase')
        SELECT c.week, COUNT(DISTINCT c.profile),
               (SELECT group_concat(n) FROM (SELECT k, COUNT(*) AS n FROM ret r WHERE r.week = c.week
                                             AND k BETWEEN 0 AND 5 GROUP BY k ORDER BY k))
        FROM cohort c GROUP BY c.week ORDER BY c.week""").fetchall()
    expected = []
    for week, size, _ in rows:
        counts = [0] * 6
        for k, n in conn.execute("""SELECT r.k, COUNT(*) FROM (SELECT DISTINCT x.profile, CAST((julianday(date(
                x.t / 1000, 'unixepoch', '-6 days', 'weekday 1')) - julianday(?)) / 7 AS INTEGER) AS k
                FROM e x JOIN (SELECT profile FROM e GROUP BY profile
                               HAVING date(MIN(t) / 1000, 'unixepoch', '-6 days', 'weekday 1') = ?) c
                ON c.profile = x.profile WHERE x.type = 'purchase') r WHERE r.k BETWEEN 0 AND 5 GROUP BY r.k""",
                                 (week, week)):
            counts[k] = n
        expected.append((week + "T00:00:00.000Z", size, counts))
    got = [(c["cohort"], c["size"], c["counts"]) for c in answer["cohorts"]]
    assert got == expected
    assert len(got) >= 3 and sum(sum(c) for _, _, c in got) > 20
    frame = db.analytics.cohorts(return_event="purchase", period="week", periods=6)
    assert list(frame["size"]) == [s for _, s, _ in expected]


@pytest.mark.parametrize("model", ["first_touch", "last_touch", "linear", "position_based", "time_decay"])
def test_attribution_equals_sql(loaded, model):
    db, conn = loaded
    lookback, half_life = 10 * DAY_MS, 2 * DAY_MS
    answer = db.analytics.attribution("purchase", model=model, lookback="10d", half_life="2d", as_frame=False)
    # Touches: each session's first event with its UTM values; a purchase credits the touches in [t - 10d, t].
    rows = conn.execute("""
        WITH firsts AS (SELECT session, MIN(t) AS ts FROM e GROUP BY session),
             touch AS (SELECT x.profile, f.ts, COALESCE(x.src, '(direct)') AS src, COALESCE(x.med, '(none)') AS med,
                              COALESCE(x.camp, '(none)') AS camp
                       FROM firsts f JOIN e x ON x.session = f.session AND x.t = f.ts),
             conv AS (SELECT rowid AS id, profile, t, COALESCE(revenue, 0) AS revenue FROM e WHERE type = 'purchase'),
             eligible AS (SELECT c.id, c.revenue, tt.ts, tt.src, tt.med, tt.camp,
                                 ROW_NUMBER() OVER (PARTITION BY c.id ORDER BY tt.ts) AS pos,
                                 COUNT(*) OVER (PARTITION BY c.id) AS n,
                                 power(2.0, -(c.t - tt.ts) * 1.0 / ?) AS w
                          FROM conv c JOIN touch tt ON tt.profile = c.profile AND tt.ts BETWEEN c.t - ? AND c.t)
        SELECT src, med, camp, pos, n, revenue, w / SUM(w) OVER (PARTITION BY id) FROM eligible""",
                        (half_life, lookback)).fetchall()

    def share(pos, n, decayed):
        if model == "time_decay":
            return decayed
        if model == "first_touch":
            return 1.0 if pos == 1 else 0.0
        if model == "last_touch":
            return 1.0 if pos == n else 0.0
        if model == "linear":
            return 1.0 / n
        if n == 1:
            return 1.0
        if n == 2:
            return 0.5
        return 0.4 if pos in (1, n) else 0.2 / (n - 2)

    expected = {}
    for src, med, camp, pos, n, revenue, decayed in rows:
        got = expected.setdefault((src, med, camp), [0.0, 0.0])
        got[0] += share(pos, n, decayed)
        got[1] += share(pos, n, decayed) * revenue
    expected = {k: v for k, v in expected.items() if v[0] > 0}
    got = {(c["source"], c["medium"], c["campaign"]): [c["conversions"], c["revenue"]] for c in answer["channels"]}
    assert got.keys() == expected.keys()
    for key, (conversions, revenue) in expected.items():
        assert got[key][0] == pytest.approx(conversions, abs=1e-9), key
        assert got[key][1] == pytest.approx(revenue, abs=1e-6), key
    (purchases, total), = conn.execute("SELECT COUNT(*), SUM(COALESCE(revenue, 0)) FROM e WHERE type = 'purchase'")
    assert answer["conversions"] == purchases and answer["revenue"] == pytest.approx(total)
    assert sum(v[0] for v in expected.values()) == pytest.approx(purchases - answer["unattributed"])
    frame = db.analytics.attribution("purchase", model=model, lookback="10d")
    assert set(frame.columns) >= {"source", "medium", "campaign", "conversions", "revenue"}


def test_data_driven_equals_a_markov_chain_solved_with_numpy(loaded):
    """The paths from SQL; the chain's absorption probabilities by numpy's linear solver (an independent method:
    libcdp iterates), removal effects and shares as docs/analytics.md defines them."""
    np = pytest.importorskip("numpy")
    db, conn = loaded
    lookback = 10 * DAY_MS
    answer = db.analytics.attribution("purchase", model="data_driven", lookback="10d", as_frame=False)
    touches = conn.execute("""
        WITH firsts AS (SELECT session, MIN(t) AS ts FROM e GROUP BY session)
        SELECT x.profile, f.ts, COALESCE(x.src, '(direct)') || '/' || COALESCE(x.med, '(none)') || '/' ||
               COALESCE(x.camp, '(none)')
        FROM firsts f JOIN e x ON x.session = f.session AND x.t = f.ts ORDER BY x.profile, f.ts""").fetchall()
    by_profile = {}
    for profile, ts, channel in touches:
        by_profile.setdefault(profile, []).append([ts, channel, False])
    paths, revenue_converting = [], 0.0
    for profile, t, revenue in conn.execute(
            "SELECT profile, t, COALESCE(revenue, 0) FROM e WHERE type = 'purchase' ORDER BY profile, t"):
        eligible = [tt for tt in by_profile.get(profile, []) if t - lookback <= tt[0] <= t]
        if eligible:
            for tt in eligible:
                tt[2] = True
            paths.append(([tt[1] for tt in eligible], True))
            revenue_converting += revenue
    for profile_touches in by_profile.values():
        rest = [tt[1] for tt in profile_touches if not tt[2]]
        if rest:
            paths.append((rest, False))
    channels = sorted({c for p, _ in paths for c in p})
    index = {c: i for i, c in enumerate(channels)}
    n = len(channels)
    counts, start = np.zeros((n, n + 2)), np.zeros(n)  # columns n: conversion, n + 1: null
    for path, converted in paths:
        start[index[path[0]]] += 1
        for a, b in zip(path, path[1:]):
            counts[index[a], index[b]] += 1
        counts[index[path[-1]], n if converted else n + 1] += 1
    probs = counts / counts.sum(axis=1, keepdims=True)
    start /= start.sum()

    def conversion(removed=None):
        keep = [i for i in range(n) if i != removed]
        q = probs[np.ix_(keep, keep)]
        x = np.linalg.solve(np.eye(len(keep)) - q, probs[keep, n])
        return float(start[keep] @ x)

    base = conversion()
    effects = np.array([max(0.0, 1 - conversion(i) / base) for i in range(n)])
    converted = sum(1 for _, c in paths if c)
    assert converted == answer["conversions"] - answer["unattributed"] and converted > 50
    got = {f"{c['source']}/{c['medium']}/{c['campaign']}": c for c in answer["channels"]}
    for i, channel in enumerate(channels):
        if effects[i] == 0:
            assert channel not in got
            continue
        assert got[channel]["conversions"] == pytest.approx(converted * effects[i] / effects.sum(), rel=1e-9)
        assert got[channel]["revenue"] == pytest.approx(revenue_converting * effects[i] / effects.sum(), rel=1e-9)
    assert len(got) == int((effects > 0).sum())


def test_journeys_equal_the_paths_counted_in_python(loaded):
    db, conn = loaded
    answer = db.analytics.journeys("purchase", steps=3, lookback="1d", as_frame=False)
    by_profile = {}
    for profile, type_, t in conn.execute("SELECT profile, type, t FROM e ORDER BY profile, t"):
        by_profile.setdefault(profile, []).append((t, type_))
    counts = {}
    for events in by_profile.values():
        for i, (t, type_) in enumerate(events):
            if type_ != "purchase":
                continue
            path = [type_]
            for t2, type2 in reversed(events[:i]):
                if len(path) > 3 or t2 < t - DAY_MS:
                    break
                if type2 != path[-1]:
                    path.append(type2)
            counts[tuple(reversed(path))] = counts.get(tuple(reversed(path)), 0) + 1
    assert answer["conversions"] == sum(counts.values())
    assert answer["distinctPaths"] == len(counts)
    for p in answer["paths"]:
        assert counts[tuple(p["path"])] == p["conversions"]
    assert [p["conversions"] for p in answer["paths"]] == sorted(counts.values(), reverse=True)[:20]
    frame = db.analytics.journeys("purchase", steps=3, lookback="1d")
    assert list(frame["conversions"]) == [p["conversions"] for p in answer["paths"]]


def test_trends_count_events_per_day(loaded):
    db, conn = loaded
    since, until = START + dt.timedelta(days=14), START + dt.timedelta(days=20, hours=23, minutes=59)
    frame = db.analytics.trends(since, until, events=["purchase"], weeks=2)
    assert len(frame) == 7 and set(frame["event"]) == {"purchase"}
    assert str(frame["at"].dtype) == "datetime64[ns, UTC]"
    for _, row in frame.iterrows():
        day = int(row["at"].timestamp() * 1000)
        (n,), = conn.execute("SELECT COUNT(*) FROM e WHERE type = 'purchase' AND t >= ? AND t < ?",
                             (day, day + DAY_MS))
        assert row["count"] == n


def test_overview_and_data_quality(loaded):
    db, conn = loaded
    now = START + dt.timedelta(days=70)
    overview = db.analytics.overview(now=now)
    (profiles,), = conn.execute("SELECT COUNT(DISTINCT profile) FROM e")
    assert overview["profiles"]["total"] == profiles == overview["profiles"]["identified"]
    (orders, revenue), = conn.execute("SELECT COUNT(*), SUM(revenue) FROM e WHERE type = 'purchase'")
    assert overview["orders"]["total"] == orders and overview["revenue"]["total"] == pytest.approx(revenue)
    monthly_since = to_ms(iso(70 * DAY_MS)) - 30 * DAY_MS
    (monthly,), = conn.execute("SELECT COUNT(DISTINCT profile) FROM e WHERE t >= ?", (monthly_since,))
    assert overview["activeProfiles"]["monthly"] == monthly
    assert overview["ingestionLatency"]["calls"] >= 3
    quality = db.analytics.data_quality(now=now)
    assert set(quality["name"]) == {"purchaseValue", "eventSource", "validIdentifiers", "schemaStability",
                                    "duplicates"}
    assert 0 <= quality.attrs["answer"]["score"] <= 100


def test_empty_answers_are_frames_with_their_columns(db):
    # Nothing tracked: every frame still has the documented columns (notebook code indexing them keeps working),
    # and time columns are datetimes.
    pd = pytest.importorskip("pandas")
    cohorts = db.analytics.cohorts(return_event="purchase")
    assert len(cohorts) == 0 and list(cohorts.columns) == ["size"] and cohorts.index.name == "cohort"
    assert str(cohorts.index.dtype) == "datetime64[ns, UTC]"
    attribution = db.analytics.attribution("purchase")
    assert len(attribution) == 0
    assert list(attribution.columns) == ["source", "medium", "campaign", "conversions", "revenue"]
    journeys = db.analytics.journeys("purchase")
    assert len(journeys) == 0 and list(journeys.columns) == ["path", "conversions", "share"]
    trends = db.analytics.trends("2026-03-01", "2026-03-02", events=["nothing-like-this"])
    assert len(trends) == 0
    assert list(trends.columns) == ["event", "at", "count", "expected", "z", "anomaly"]
    assert str(trends["at"].dtype) == "datetime64[ns, UTC]"
    by_value = db.analytics.trends("2026-03-01", "2026-03-02", events=["purchase"], property="source")
    assert "value" in by_value.columns
    # With rows, cohorts are indexed by datetimes too.
    db.events.track({"type": "purchase", "customerId": "c1", "timestamp": "2026-03-02T10:00:00Z"})
    cohorts = db.analytics.cohorts(return_event="purchase", period="week")
    assert list(cohorts.index) == [pd.Timestamp("2026-03-02T00:00:00Z")]
    assert int(cohorts["size"].iloc[0]) == 1


def test_bad_requests_name_the_field(db):
    with pytest.raises(cdp.InvalidArgument) as e:
        db.analytics.funnel(["purchase"])
    assert e.value.field == "steps"
    with pytest.raises(cdp.InvalidArgument) as e:
        db.analytics.attribution("purchase", model="magic")
    assert e.value.field == "model"
