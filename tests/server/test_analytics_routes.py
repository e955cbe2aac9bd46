# Copyright 2026 The libcdp Authors.
#
# cdp-server's analytics routes (issue 6): funnel, cohorts and attribution over HTTP, with the same answers as the
# engine's (checked against SQL in bindings/python/tests/test_analytics.py), and 400 naming the field.
#
#   CDP_SERVER_BIN=build/examples/server/cdp-server /usr/bin/python3 -m pytest tests/server/test_analytics_routes.py -q

import os
import uuid

import pytest

import server_process
from server_process import SERVER_BIN

API_KEY = "analytics-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"cdp-server binary not found at {SERVER_BIN}; build it or set CDP_SERVER_BIN")
    srv = server_process.ServerProcess(tmp_path_factory.mktemp("cdp-analytics"), API_KEY)
    events = []
    for who, utm in (("a", "google"), ("b", "news"), ("c", None)):
        props = {"utm_source": utm, "utm_medium": "cpc"} if utm else {}
        events += [
            {"customerId": who, "type": "product_view", "timestamp": "2026-03-02T10:00:00Z", "properties": props},
            {"customerId": who, "type": "add_to_cart", "timestamp": "2026-03-02T10:05:00Z"},
        ]
    events.append({"customerId": "a", "type": "purchase", "timestamp": "2026-03-02T10:10:00Z",
                   "properties": {"revenue": 30}})
    status, body, _ = srv.request("POST", "/api/cdp/events/batch", events, key=API_KEY)
    assert status == 200 and body["rejected"] == 0, body
    yield srv
    code = srv.stop()
    assert code == 0, srv.stderr()


def call(server, method, path, body=None, params=None):
    return server.request(method, path, body, key=API_KEY, params=params)


def test_funnel(server):
    status, body, _ = call(server, "POST", "/api/cdp/analytics/funnel", {
        "steps": [{"event": "product_view"}, {"event": "add_to_cart"}, {"event": "purchase"}], "window": "1h",
        "breakdown": "properties.utm_source"})
    assert status == 200, body
    assert [s["profiles"] for s in body["steps"]] == [3, 3, 1]
    assert body["steps"][1]["medianSecondsFromPrevious"] == 300
    by_value = {g["value"]: [s["profiles"] for s in g["steps"]] for g in body["breakdown"]}
    assert by_value == {"google": [1, 1, 1], "news": [1, 1, 0], None: [1, 1, 0]}


def test_cohorts(server):
    status, body, _ = call(server, "POST", "/api/cdp/analytics/cohorts",
                           {"returnEvent": "purchase", "period": "day", "periods": 2})
    assert status == 200, body
    assert body["cohorts"] == [{"cohort": "2026-03-02T00:00:00.000Z", "size": 3, "counts": [1, 0],
                                "percentages": [100 / 3, 0]}]


def test_attribution_by_query_and_by_body(server):
    status, body, _ = call(server, "GET", "/api/cdp/analytics/attribution",
                           params={"conversion": "purchase", "model": "first_touch", "lookback": "7d"})
    assert status == 200, body
    assert body["conversions"] == 1 and body["revenue"] == 30 and body["unattributed"] == 0
    assert body["channels"] == [{"source": "google", "medium": "cpc", "campaign": "(none)", "conversions": 1,
                                 "revenue": 30}]
    status, posted, _ = call(server, "POST", "/api/cdp/analytics/attribution",
                             {"conversion": "purchase", "model": "first_touch", "lookback": "7d"})
    assert status == 200 and posted == body


def test_journeys_and_trends(server):
    status, body, _ = call(server, "POST", "/api/cdp/analytics/journeys", {"conversion": "purchase"})
    assert status == 200, body
    assert body["conversions"] == 1
    assert body["paths"] == [{"path": ["product_view", "add_to_cart", "purchase"], "conversions": 1, "share": 1}]
    status, body, _ = call(server, "POST", "/api/cdp/analytics/trends",
                           {"from": "2026-03-02T00:00:00Z", "to": "2026-03-02T23:00:00Z", "interval": "hour",
                            "events": ["add_to_cart"]})
    assert status == 200, body
    points = body["series"][0]["points"]
    assert len(points) == 24 and points[10]["count"] == 3 and sum(p["count"] for p in points) == 3


def test_overview_and_quality(server):
    status, body, _ = call(server, "GET", "/api/cdp/analytics/overview", params={"now": "2026-03-03T00:00:00Z"})
    assert status == 200, body
    assert body["profiles"]["total"] == 3 and body["orders"]["30d"] == 1 and body["revenue"]["30d"] == 30
    assert body["eventsByType"]["24h"] == {"product_view": 3, "add_to_cart": 3, "purchase": 1}
    assert body["activeProfiles"] == {"daily": 3, "weekly": 3, "monthly": 3}
    assert 0 <= body["dataQuality"]["score"] <= 100
    status, quality, _ = call(server, "GET", "/api/cdp/analytics/quality", params={"now": "2026-03-03T00:00:00Z"})
    assert status == 200 and quality == body["dataQuality"]


def test_bad_requests_are_400_naming_the_field(server):
    cases = [
        ("POST", "/api/cdp/analytics/funnel", {"steps": [{"event": "purchase"}]}, None, "steps"),
        ("POST", "/api/cdp/analytics/funnel", {"steps": [{"event": "a"}, {}]}, None, "steps[1].event"),
        ("POST", "/api/cdp/analytics/cohorts", {"period": "year"}, None, "period"),
        ("POST", "/api/cdp/analytics/journeys", {"conversion": "purchase", "limit": 0}, None, "limit"),
        ("POST", "/api/cdp/analytics/trends", {"from": "2026-01-01", "to": "2026-01-02", "weeks": 1}, None, "weeks"),
        ("GET", "/api/cdp/analytics/attribution", None, {"model": "last_touch"}, "conversion"),
        ("GET", "/api/cdp/analytics/overview", None, {"now": "yesterday"}, "now"),
        ("GET", "/api/cdp/analytics/quality", None, {"at": "2026-01-01"}, "at"),
        ("GET", "/api/cdp/analytics/attribution", None, {"conversion": "purchase", "colour": "red"}, "colour"),
        ("GET", "/api/cdp/analytics/attribution", None, {"conversion": "purchase", "lookback": "a while"},
         "lookback"),
    ]
    for method, path, body, params, field in cases:
        status, answer, _ = call(server, method, path, body, params)
        assert status == 400, (path, body, params, answer)
        assert answer["error"]["code"] == "invalid_argument" and answer["error"]["field"] == field, answer
