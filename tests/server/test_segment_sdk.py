# Copyright 2026 The libcdp Authors.
#
# End-to-end tests of cdp-server's Segment tracking API (/v1/...) with the official Node SDKs from npm,
# @segment/analytics-node and @rudderstack/rudder-sdk-node, gzip on, pointed at a local cdp-server; the results are
# checked through the REST API.
#
#   npm ci --prefix tests/segment-sdk        (make test-python does it)
#   CDP_SERVER_BIN=build/examples/server/cdp-server /usr/bin/python3 -m pytest tests/server/test_segment_sdk.py -q
#
# The Node side is tests/segment-sdk/send.js (versions pinned in package.json / package-lock.json). Missing node or
# SDKs fail the tests with the command that installs them; nothing is skipped.

import base64
import gzip
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from server_process import REPO_ROOT, SERVER_BIN, ServerProcess  # noqa: F401

SDK_DIR = REPO_ROOT / "tests" / "segment-sdk"
SEND_JS = SDK_DIR / "send.js"
API_KEY = "api-key-" + uuid.uuid4().hex
WRITE_KEY = "write-key-" + uuid.uuid4().hex
SDK_PACKAGES = ("@segment/analytics-node", "@rudderstack/rudder-sdk-node")


class SegmentServer(ServerProcess):
    """A cdp-server on 127.0.0.1 with an API key and a write key."""

    def __init__(self, data_dir, extra_args=()):
        super().__init__(data_dir, API_KEY, ["--write-key", WRITE_KEY, *extra_args])
        self.url = f"http://127.0.0.1:{self.port}"

    def api(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"}
        status, parsed, _ = self.raw(method, path, data, headers)
        assert status == 200, (method, path, status, parsed)
        return parsed

    def profile_by(self, id_type, value):
        """The one profile holding identifier `id_type` = value (found by search)."""
        found = self.api("POST", "/api/cdp/profiles/search",
                         {"conditions": [{"field": f"externalIds.{id_type}", "operator": "=", "value": value}]})
        assert len(found["items"]) == 1, (id_type, value, found)
        return found["items"][0]

    def events_of(self, profile_id):
        return self.api("GET", f"/api/cdp/profiles/{profile_id}/events?limit=1000")["items"]


def basic(key):
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture(scope="module")
def sdk():
    """Checks that node and the pinned SDKs are installed; fails (never skips) with the command that fixes it."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `bash scripts/install-deps.sh` (Debian's nodejs and npm)")
    missing = [p for p in SDK_PACKAGES if not (SDK_DIR / "node_modules" / p / "package.json").is_file()]
    if missing:
        pytest.fail(f"Node SDKs {missing} are not installed in {SDK_DIR}: run `npm ci --prefix tests/segment-sdk` "
                    "(part of `make test-python`)")
    return node


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"cdp-server binary not found at {SERVER_BIN}; build it or set CDP_SERVER_BIN")
    srv = SegmentServer(tmp_path_factory.mktemp("cdp-segment"))
    yield srv
    code = srv.stop()
    assert code == 0, srv.stderr()


def send(node, server, sdk_name, rounds, *, write_key=WRITE_KEY, gzip_on=True, expect_ok=True):
    plan = {"sdk": sdk_name, "host": server.url, "writeKey": write_key, "gzip": gzip_on, "rounds": rounds}
    proc = subprocess.run([node, str(SEND_JS)], input=json.dumps(plan), capture_output=True, text=True,
                          cwd=SDK_DIR, timeout=180)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if expect_ok:
        assert proc.returncode == 0 and out["errors"] == [], (out, proc.stderr, server.stderr())
        assert out["requests"], out
        for request in out["requests"]:
            assert request["status"] == 200, out
            assert request["encoding"] == ("gzip" if gzip_on else None), out
    return out


def iso(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def journey(tag, *, with_timestamps):
    """One shopper's journey as SDK calls: anonymous browsing, identify, cart, order, screen, group, alias."""
    anon, user, older_anon = f"anon-{tag}", f"user-{tag}", f"old-anon-{tag}"
    base = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)

    def at(minutes):
        if with_timestamps:
            return {"timestamp": iso(base + timedelta(minutes=minutes))}
        # The device clock's reading (minutes apart, so no two events tie), corrected by the server with sentAt and
        # receivedAt.
        return {"originalTimestamp": iso(datetime.now(timezone.utc) + timedelta(minutes=minutes - 10))}

    campaign = {"source": "newsletter", "medium": "email", "name": f"spring-{tag}"}
    calls = [
        {"method": "track", "params": {"anonymousId": older_anon, "event": "Visited", **at(-600)}},
        {"method": "page", "params": {"anonymousId": anon, "name": "Shoes", "category": "Catalog",
                                      "properties": {"url": f"https://shop.test/shoes?{tag}", "path": "/shoes"},
                                      "context": {"ip": "203.0.113.7", "campaign": campaign}, **at(0)}},
        {"method": "track", "params": {"anonymousId": anon, "event": "Product Viewed",
                                       "properties": {"product_id": "p-1", "price": 49.75}, **at(1)}},
        {"method": "identify", "params": {"anonymousId": anon, "userId": user,
                                          "traits": {"email": f"{tag}@Example.com", "name": "Ada Lovelace",
                                                     "plan": "gold", "address": {"city": "London"}}}},
        {"method": "track", "params": {"userId": user, "event": "Product Added",
                                       "properties": {"product_id": "p-1", "price": 49.75}, **at(2)}},
        {"method": "track", "params": {"userId": user, "event": "Order Completed", "messageId": f"order-{tag}",
                                       "properties": {"order_id": f"o-{tag}", "revenue": 99.5}, **at(3)}},
        {"method": "screen", "params": {"userId": user, "name": "Receipt", **at(4)}},
        {"method": "group", "params": {"userId": user, "groupId": f"acme-{tag}", "traits": {"plan": "team"}, **at(5)}},
        {"method": "alias", "params": {"previousId": older_anon, "userId": user}},
    ]
    return anon, user, older_anon, calls


def check_journey(server, tag, anon, user, older_anon):
    profile = server.profile_by("customerId", user)
    assert profile["externalIds"]["email"] == f"{tag}@example.com"
    anonymous_ids = profile["externalIds"]["anonymousId"]
    anonymous_ids = anonymous_ids if isinstance(anonymous_ids, list) else [anonymous_ids]
    assert sorted(anonymous_ids) == sorted([anon, older_anon])  # identify linked anon, alias linked older_anon
    assert len(profile["mergedIds"]) == 1  # the older anonymous profile merged in by the alias
    attrs = profile["attributes"]
    assert (attrs["firstName"], attrs["lastName"], attrs["city"]) == ("Ada", "Lovelace", "London")
    assert attrs["customFields"]["plan"] == "gold"
    assert profile["computed"]["purchaseCount"] == 1
    assert profile["computed"]["ltv"] == pytest.approx(99.5)

    events = server.events_of(profile["id"])
    by_name = {e.get("name"): e for e in events}
    assert by_name["Visited"]["type"] == "custom"
    assert by_name["Shoes"]["type"] == "page_view"
    assert by_name["Shoes"]["properties"]["context"]["ip"] == "203.0.113.7"
    assert by_name["Product Viewed"]["type"] == "product_view"
    assert by_name["Product Added"]["type"] == "add_to_cart"
    assert by_name["Order Completed"]["type"] == "purchase"
    assert by_name["Order Completed"]["id"] == f"order-{tag}"
    assert by_name["Receipt"]["type"] == "page_view"
    assert by_name["Receipt"]["properties"]["screen"] == "Receipt"
    assert by_name["group"]["type"] == "custom"
    assert by_name["group"]["properties"]["groupId"] == f"acme-{tag}"
    assert len(events) == 7, [e.get("name") for e in events]
    for e in events:
        assert e["source"] == "segment"
        assert e["properties"]["messageId"]

    sessions = server.api("GET", f"/api/cdp/profiles/{profile['id']}/sessions")["items"]
    shoes = [s for s in sessions if s["firstPage"] == f"https://shop.test/shoes?{tag}"]
    assert len(shoes) == 1, sessions
    assert (shoes[0]["utmSource"], shoes[0]["utmMedium"], shoes[0]["utmCampaign"]) == (
        "newsletter", "email", f"spring-{tag}")
    return profile, events


def test_analytics_node_journey_gzip(sdk, server):
    tag = "seg" + uuid.uuid4().hex[:8]
    anon, user, older_anon, calls = journey(tag, with_timestamps=True)
    out = send(sdk, server, "segment", [calls[:1], calls[1:]])
    assert out["calls"] == len(calls)
    profile, events = check_journey(server, tag, anon, user, older_anon)
    # analytics-node messages carry `timestamp`: it is the event time.
    assert by_time(events, "Order Completed") == "2026-02-01T09:03:00.000Z"


def by_time(events, name):
    return next(e["timestamp"] for e in events if e.get("name") == name)


def test_rudder_sdk_journey_gzip(sdk, server):
    tag = "rud" + uuid.uuid4().hex[:8]
    anon, user, older_anon, calls = journey(tag, with_timestamps=False)
    out = send(sdk, server, "rudder", [calls[:1], calls[1:]])
    assert out["calls"] == len(calls)
    check_journey(server, tag, anon, user, older_anon)


def test_rudder_event_time_without_timestamp(sdk, server):
    # RudderStack's messages have originalTimestamp and sentAt (device clock) but no timestamp: the event time is
    # receivedAt - (sentAt - originalTimestamp), i.e. the device's "a day before sending" put on the server's clock.
    user = "skew-" + uuid.uuid4().hex[:8]
    before = datetime.now(timezone.utc)
    message = {"userId": user, "event": "Order Completed", "messageId": f"msg-{user}",
               "originalTimestamp": iso(before - timedelta(days=1)), "properties": {"revenue": 10}}
    send(sdk, server, "rudder", [[{"method": "track", "params": message}]])
    send(sdk, server, "rudder", [[{"method": "track", "params": message}]])  # resent: same messageId
    after = datetime.now(timezone.utc)
    profile = server.profile_by("customerId", user)
    events = server.events_of(profile["id"])
    assert len(events) == 1, events
    assert profile["computed"]["purchaseCount"] == 1
    assert events[0]["id"] == f"msg-{user}"
    t = parse_iso(events[0]["timestamp"])
    day = timedelta(days=1)
    assert before - day - timedelta(milliseconds=1) <= t <= after - day, (t, before, after)


def test_resent_batch_without_timestamp_is_a_duplicate(server):
    # What an SDK retry looks like: the same body (same sentAt) received later, so the computed event time moves by
    # the delay; the dedupe window recognises the messageIds.
    user = "resend-" + uuid.uuid4().hex[:8]
    sent = datetime.now(timezone.utc)
    body = gzip.compress(json.dumps({"sentAt": iso(sent), "batch": [
        {"type": "track", "userId": user, "event": "Order Completed", "messageId": f"r1-{user}",
         "originalTimestamp": iso(sent - timedelta(seconds=5)), "properties": {"revenue": 4}},
        {"type": "identify", "userId": user, "messageId": f"r2-{user}", "traits": {"plan": "old"}}]}).encode())
    headers = {"Authorization": basic(WRITE_KEY), "Content-Encoding": "gzip"}
    status, first, _ = server.raw("POST", "/v1/batch", body, headers)
    assert status == 200 and [r["status"] for r in first["results"]] == ["ok", "ok"], first
    server.raw("POST", "/v1/identify", json.dumps({"userId": user, "traits": {"plan": "new"}}).encode(),
               {"Authorization": basic(WRITE_KEY)})
    time.sleep(0.01)  # a later receipt: another computed time
    status, again, _ = server.raw("POST", "/v1/batch", body, headers)
    assert status == 200 and [r["status"] for r in again["results"]] == ["duplicate", "duplicate"], again
    profile = server.profile_by("customerId", user)
    assert len(server.events_of(profile["id"])) == 1
    assert profile["computed"]["ltv"] == pytest.approx(4)
    assert profile["attributes"]["customFields"]["plan"] == "new"  # the resent identify did not apply again


def test_a_message_too_deep_is_refused_alone_in_a_batch(server):
    user = "deep-" + uuid.uuid4().hex[:8]
    deep = 1
    for _ in range(80):
        deep = [deep]
    body = json.dumps({"batch": [
        {"type": "track", "userId": user, "event": "Fine", "properties": {"revenue": 1}},
        {"type": "track", "userId": user, "event": "Too deep", "properties": {"x": deep}},
        # Deep in a member the mapping drops: held to the same limit as the message sent alone.
        {"type": "track", "userId": user, "event": "Deep elsewhere", "integrations": {"x": deep}}]}).encode()
    status, answer, _ = server.raw("POST", "/v1/batch", body, {"Authorization": basic(WRITE_KEY)})
    assert status == 200, answer
    assert [r["status"] for r in answer["results"]] == ["ok", "invalid_argument", "invalid_argument"], answer
    assert answer["results"][1]["error"]["field"].startswith("properties.x"), answer
    assert answer["results"][2]["error"]["field"].startswith("integrations.x"), answer
    alone = json.dumps({"type": "track", "userId": user, "event": "Deep elsewhere", "integrations": {"x": deep}})
    status, answer, _ = server.raw("POST", "/v1/track", alone.encode(), {"Authorization": basic(WRITE_KEY)})
    assert status == 400 and answer["error"]["field"].startswith("integrations.x"), answer
    assert len(server.events_of(server.profile_by("customerId", user)["id"])) == 1


def test_analytics_node_resend_is_a_duplicate(sdk, server):
    user = "dup-" + uuid.uuid4().hex[:8]
    call = {"method": "track", "params": {"userId": user, "event": "Order Completed", "messageId": f"m-{user}",
                                          "timestamp": "2026-02-02T10:00:00.000Z", "properties": {"total": 5}}}
    send(sdk, server, "segment", [[call], [call]])
    profile = server.profile_by("customerId", user)
    assert len(server.events_of(profile["id"])) == 1
    assert profile["computed"]["ltv"] == pytest.approx(5)


def test_plain_json_without_gzip_also_works(sdk, server):
    user = "plain-" + uuid.uuid4().hex[:8]
    send(sdk, server, "segment", [[{"method": "identify", "params": {"userId": user, "traits": {"firstName": "Jo"}}}]],
         gzip_on=False)
    assert server.profile_by("customerId", user)["attributes"]["firstName"] == "Jo"


def test_wrong_write_key_is_rejected_and_stores_nothing(sdk, server):
    user = "nokey-" + uuid.uuid4().hex[:8]
    call = {"method": "identify", "params": {"userId": user}}
    for sdk_name in ("segment", "rudder"):
        out = send(sdk, server, sdk_name, [[call]], write_key="wrong", expect_ok=False)
        assert out["errors"], out
        assert out["requests"] and {r["status"] for r in out["requests"]} == {401}, out
    found = server.api("POST", "/api/cdp/profiles/search",
                       {"conditions": [{"field": "externalIds.customerId", "operator": "=", "value": user}]})
    assert found["items"] == []


# ---- the HTTP surface directly -------------------------------------------------------------------------------------


def test_auth_forms(server):
    msg = {"userId": "auth-" + uuid.uuid4().hex[:8], "event": "Ping"}
    body = json.dumps(msg).encode()
    ok = [
        {"Authorization": basic(WRITE_KEY)},
        {"Authorization": "basic " + base64.b64encode(WRITE_KEY.encode()).decode()},  # no colon
    ]
    for headers in ok:
        status, resp, _ = server.raw("POST", "/v1/track", body, headers)
        assert status == 200 and resp["success"] is True, resp
    status, resp, _ = server.raw("POST", "/v1/track", json.dumps(dict(msg, writeKey=WRITE_KEY)).encode(),
                                 {"Content-Type": "text/plain"})
    assert status == 200, resp
    bad = [{}, {"Authorization": basic("nope")}, {"Authorization": "Bearer " + WRITE_KEY},
           {"Authorization": "Bearer " + API_KEY}, {"Authorization": "Basic !!!"}]
    for headers in bad:
        status, resp, resp_headers = server.raw("POST", "/v1/track", body, headers)
        assert status == 401, (headers, resp)
        assert resp["error"]["code"] == "unauthenticated"
        assert resp_headers["WWW-Authenticate"].startswith("Basic")
    status, _, _ = server.raw("POST", "/v1/track", json.dumps(dict(msg, writeKey="nope")).encode())
    assert status == 401


def test_a_request_without_a_body_is_401_or_400_for_the_json(server):
    # No Content-Length and no body (curl -X POST): without credentials 401, with them 400 for the empty JSON; not a
    # complaint about gzip. Sent on a raw socket, since http.client always adds a Content-Length.
    def post(headers):
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(("POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers +
                          "\r\n").encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    status, resp = post("")
    assert status == 401, resp
    assert resp["error"]["code"] == "unauthenticated"
    status, resp = post(f"Authorization: {basic(WRITE_KEY)}\r\n")
    assert status == 400, resp
    assert resp["error"]["code"] == "invalid_argument"
    assert "gzip" not in resp["error"]["message"]
    assert resp["error"]["message"].startswith("request body: "), resp


@pytest.mark.parametrize("route,message,field", [
    ("/v1/track", {"userId": "u", "properties": {}}, "event"),
    ("/v1/identify", {"traits": {"firstName": "A"}}, "userId"),
    ("/v1/alias", {"userId": "u"}, "previousId"),
    ("/v1/group", {"userId": "u"}, "groupId"),
    ("/v1/page", {"type": "track", "userId": "u", "event": "x"}, "type"),
    ("/v1/identify", {"userId": "u", "traits": {"lastName": 3}}, "traits.lastName"),
])
def test_invalid_messages_are_400_with_the_field(server, route, message, field):
    status, resp, _ = server.raw("POST", route, json.dumps(message).encode(), {"Authorization": basic(WRITE_KEY)})
    assert status == 400, resp
    assert resp["error"]["code"] == "invalid_argument"
    assert resp["error"]["field"] == field


def test_every_route_answers_success(server):
    user = "routes-" + uuid.uuid4().hex[:8]
    auth = {"Authorization": basic(WRITE_KEY)}
    for route, message in [("identify", {"userId": user, "traits": {"email": f"{user}@example.com"}}),
                           ("track", {"userId": user, "event": "Product Viewed"}),
                           ("page", {"userId": user, "name": "Home"}),
                           ("screen", {"userId": user, "name": "Main"}),
                           ("group", {"userId": user, "groupId": "g1"}),
                           ("alias", {"userId": user, "previousId": f"prev-{user}"})]:
        status, resp, _ = server.raw("POST", f"/v1/{route}", json.dumps(message).encode(), auth)
        assert status == 200, (route, resp)
        assert resp["success"] is True and resp["type"] == route
    profile = server.profile_by("customerId", user)
    assert sorted(e["type"] for e in server.events_of(profile["id"])) == [
        "custom", "page_view", "page_view", "product_view"]
    status, resp, _ = server.raw("POST", "/v1/batch", json.dumps({"batch": [
        {"type": "track", "userId": user, "event": "Product Added"}, {"type": "track", "event": "no id"}]}).encode(),
        auth)
    assert status == 200, resp
    assert (resp["success"], resp["accepted"], resp["rejected"]) == (True, 1, 1)
    assert [r["status"] for r in resp["results"]] == ["ok", "invalid_argument"]


def test_size_limits_are_400(server):
    auth = {"Authorization": basic(WRITE_KEY)}
    user = "big-" + uuid.uuid4().hex[:8]
    message = {"userId": user, "event": "Big", "properties": {"blob": "x" * (33 << 10)}}
    status, resp, _ = server.raw("POST", "/v1/track", json.dumps(message).encode(), auth)
    assert status == 400 and resp["error"]["code"] == "invalid_argument", resp
    batch = {"batch": [{"type": "track", "userId": user, "event": "E", "properties": {"blob": "y" * (30 << 10)}}
                       for _ in range(18)]}
    text = json.dumps(batch).encode()
    assert len(text) > 500 << 10
    for body, headers in ((text, auth), (gzip.compress(text), dict(auth, **{"Content-Encoding": "gzip"}))):
        status, resp, _ = server.raw("POST", "/v1/batch", body, headers)
        assert status == 400 and resp["error"]["code"] == "invalid_argument", resp
    # A gzip bomb is cut off at the server's body limit, not inflated (still a 400, as Segment answers).
    bomb = gzip.compress(b'{"batch":[' + b" " * (64 << 20) + b"]}")
    status, resp, _ = server.raw("POST", "/v1/batch", bomb, dict(auth, **{"Content-Encoding": "gzip"}))
    assert status == 400 and resp["error"]["code"] == "invalid_argument", resp
    assert resp["error"]["field"] == "batch" and "over the limit" in resp["error"]["message"], resp
    status, resp, _ = server.raw("POST", "/v1/batch", b"\x1f\x8bnot gzip", dict(auth, **{"Content-Encoding": "gzip"}))
    assert status == 400, resp
    status, resp, _ = server.raw("POST", "/v1/track", b"{not json", auth)
    assert status == 400 and resp["error"]["code"] == "invalid_argument", resp
    found = server.api("POST", "/api/cdp/profiles/search",
                       {"conditions": [{"field": "externalIds.customerId", "operator": "=", "value": user}]})
    assert found["items"] == []
