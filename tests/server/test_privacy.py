# Copyright 2026 The libcdp Authors.
#
# cdp-server's privacy routes (issue 5): consent statements and their history over HTTP, and their enforcement.
#
#   CDP_SERVER_BIN=build/examples/server/cdp-server /usr/bin/python3 -m pytest tests/server/test_privacy.py -q

import base64
import json
import os
import uuid

import pytest

import server_process
from server_process import SERVER_BIN

API_KEY = "privacy-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"cdp-server binary not found at {SERVER_BIN}; build it or set CDP_SERVER_BIN")
    srv = server_process.ServerProcess(tmp_path_factory.mktemp("cdp-privacy"), API_KEY)
    yield srv
    code = srv.stop()
    assert code == 0, srv.stderr()


def call(server, method, path, body=None, params=None):
    return server.request(method, path, body, key=API_KEY, params=params)


def new_profile(server):
    email = f"p-{uuid.uuid4().hex[:12]}@example.com"
    status, body, _ = call(server, "POST", "/api/cdp/profiles", {"externalIds": {"email": email}})
    assert status == 201, body
    return body["id"], email


def test_consent_is_recorded_read_back_and_kept_with_its_history(server):
    pid, email = new_profile(server)
    status, body, headers = call(server, "POST", "/api/cdp/consent", {
        "identifier": {"type": "email", "value": email.upper()},
        "purposes": {"email": "granted", "sms": "denied"},
        "consentMode": {"ad_storage": "granted", "ad_user_data": "granted", "ad_personalization": "granted",
                        "analytics_storage": "granted"},
        "source": "cmp", "policyVersion": "v7", "timestamp": "2026-11-01T12:00:00Z"})
    assert status == 201, body
    assert headers["Location"] == f"/api/cdp/consent/{pid}"
    assert body["profileId"] == pid
    assert body["purposes"]["email"]["granted"] is True
    assert body["purposes"]["email"]["policyVersion"] == "v7"
    assert body["purposes"]["ads"]["granted"] is True  # the three advertising signals granted
    assert body["consentMode"] == {"ad_storage": "granted", "analytics_storage": "granted",
                                   "ad_user_data": "granted", "ad_personalization": "granted"}

    status, body, _ = call(server, "POST", "/api/cdp/consent",
                           {"profileId": pid, "consentMode": {"ad_personalization": "denied"}, "source": "cmp"})
    assert status == 201, body
    status, doc, _ = call(server, "GET", f"/api/cdp/consent/{pid}")
    assert status == 200, doc
    assert doc["purposes"]["ads"]["granted"] is False
    assert doc["consentMode"]["ad_personalization"] == "denied"
    assert [r["via"] for r in doc["history"]] == ["consent", "consent"]
    assert doc["history"][1]["purposes"] == {"ad_personalization": False, "ads": False}
    # The profile document carries the state.
    status, profile, _ = call(server, "GET", f"/api/cdp/profiles/{pid}")
    assert profile["consent"]["email"] is True and profile["consent"]["ads"] is False


def test_tracking_denied_events_are_refused_with_409(server):
    pid, email = new_profile(server)
    status, body, _ = call(server, "POST", "/api/cdp/consent", {"profileId": pid, "purposes": {"tracking": "denied"}})
    assert status == 201, body
    status, body, _ = call(server, "POST", "/api/cdp/events", {"type": "page_view", "email": email})
    assert status == 409, body
    assert body["error"]["code"] == "failed_precondition"
    assert "tracking" in body["error"]["message"]
    status, body, _ = call(server, "POST", "/api/cdp/events/batch", [
        {"type": "page_view", "profileId": pid},
        {"type": "page_view", "email": f"other-{uuid.uuid4().hex[:8]}@example.com"}])
    assert status == 200, body
    assert body["accepted"] == 1 and body["rejected"] == 1
    assert body["results"][0]["status"] == "failed_precondition"
    status, timeline, _ = call(server, "GET", f"/api/cdp/profiles/{pid}/timeline")
    assert status == 200 and timeline["items"] == []
    # The Segment tracking routes too (the write key defaults to the API key): a customerId linked to the person.
    basic = {"Authorization": "Basic " + base64.b64encode((API_KEY + ":").encode()).decode(),
             "Content-Type": "application/json"}
    status, body, _ = call(server, "POST", "/api/cdp/identity/identify",
                           {"identifiers": {"customerId": "cust-" + pid, "email": email}})
    assert status == 200, body
    status, body, _ = server.raw("POST", "/v1/track", json.dumps({"userId": "cust-" + pid,
                                                                  "event": "Product Viewed"}).encode(), basic)
    assert status == 409, body
    assert body["error"]["field"] == "consent.tracking", body
    status, timeline, _ = call(server, "GET", f"/api/cdp/profiles/{pid}/timeline")
    assert status == 200 and timeline["items"] == [], timeline


@pytest.mark.parametrize("body,field", [
    ({"purposes": {"email": "granted"}}, "profileId"),
    ({"profileId": "x", "purposes": {"email": "maybe"}}, "purposes.email"),
    ({"profileId": "x", "purposes": {"Not A Purpose": True}}, "purposes.Not A Purpose"),
    ({"profileId": "x", "consentMode": {"ad_click": "granted"}}, "consentMode.ad_click"),
    ({"profileId": "x", "purposes": {}}, "purposes"),
    ({"profileId": "x", "purposes": {"email": True}, "extra": 1}, "extra"),
])
def test_bad_consent_requests_are_400_naming_the_field(server, body, field):
    status, resp, _ = call(server, "POST", "/api/cdp/consent", body)
    assert status == 400, resp
    assert resp["error"]["code"] == "invalid_argument" and resp["error"]["field"] == field, resp


def test_consent_history_pages(server):
    pid, _ = new_profile(server)
    for i in range(12):
        status, body, _ = call(server, "POST", "/api/cdp/consent",
                               {"profileId": pid, "purposes": {"email": i % 2 == 0}, "source": f"s{i}"})
        assert status == 201, body
    seen, cursor = [], None
    while True:
        params = {"limit": "5"} if cursor is None else {"limit": "5", "cursor": cursor}
        status, page, _ = call(server, "GET", f"/api/cdp/consent/{pid}/history", params=params)
        assert status == 200, page
        assert page["profileId"] == pid and len(page["items"]) <= 5
        seen += [r["source"] for r in page["items"] if r["via"] == "consent"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"s{i}" for i in range(12)]
    status, doc, _ = call(server, "GET", f"/api/cdp/consent/{pid}")
    assert doc["historyCount"] == len(doc["history"]) >= 12
    for params, field in (({"limit": "0"}, "limit"), ({"cursor": "nope"}, "cursor"), ({"size": "3"}, "size")):
        status, body, _ = call(server, "GET", f"/api/cdp/consent/{pid}/history", params=params)
        assert status == 400, body
        assert body["error"]["field"] == field
    status, body, _ = call(server, "GET", "/api/cdp/consent/nobody-here/history")
    assert status == 404, body
    status, body, _ = server.request("GET", f"/api/cdp/consent/{pid}/history", key=None)
    assert status == 401, body


def test_unknown_people_are_404(server):
    status, body, _ = call(server, "GET", "/api/cdp/consent/nobody-here")
    assert status == 404, body
    status, body, _ = call(server, "POST", "/api/cdp/consent",
                           {"identifier": {"type": "email", "value": "ghost@example.com"}, "purposes": {"email": True}})
    assert status == 404, body


@pytest.mark.parametrize("method,path", [("POST", "/api/cdp/consent"), ("GET", "/api/cdp/consent/some-id")])
def test_consent_routes_require_the_key(server, method, path):
    status, body, _ = server.request(method, path, {"profileId": "x", "purposes": {"email": True}}, key=None)
    assert status == 401, body
    status, body, _ = server.request(method, path, {"profileId": "x", "purposes": {"email": True}}, key="wrong")
    assert status == 401, body


def test_gdpr_export_delete_requests_and_suppression(server):
    pid, email = new_profile(server)
    status, body, _ = call(server, "POST", "/api/cdp/events",
                           {"type": "purchase", "email": email, "properties": {"revenue": 7}})
    assert status == 201, body
    status, export, headers = call(server, "POST", f"/api/cdp/gdpr/export/{pid}")
    assert status == 200, export
    assert "attachment" in headers["Content-Disposition"]
    assert export["profileId"] == pid and len(export["events"]) == 1
    assert set(export) >= {"profile", "identity", "events", "sessions", "consent", "segments", "requestId"}

    status, record, _ = call(server, "POST", f"/api/cdp/gdpr/delete/{pid}")
    assert status == 200, record
    assert record["status"] == "completed" and record["type"] == "erasure"
    assert pid not in str(record)
    status, again, _ = call(server, "GET", f"/api/cdp/gdpr/requests/{record['id']}")
    assert status == 200 and again == record
    status, body, _ = call(server, "GET", f"/api/cdp/profiles/{pid}")
    assert status == 404, body
    # Suppressed: the erased email does not come back.
    status, body, _ = call(server, "POST", "/api/cdp/events", {"type": "page_view", "email": email})
    assert status == 409, body
    status, body, _ = call(server, "POST", "/api/cdp/gdpr/suppression/check", {"type": "email", "value": email})
    assert status == 200 and body == {"suppressed": True}, body
    status, body, _ = call(server, "GET", "/api/cdp/gdpr/requests", params={"profileId": pid})
    assert status == 200, body
    assert [r["type"] for r in body["items"]] == ["erasure", "access"]
    assert body["turnaround"]["completed"] == 2 and body["turnaround"]["p50Ms"] >= 0
    status, body, _ = call(server, "POST", "/api/cdp/gdpr/suppression/lift", {"type": "email", "value": email})
    assert status == 200 and body["unsuppressed"] is True, body
    status, body, _ = call(server, "POST", "/api/cdp/events", {"type": "page_view", "email": email})
    assert status == 201, body


def test_suppression_of_erased_identifiers_can_be_turned_off(tmp_path):
    srv = server_process.ServerProcess(tmp_path / "db", API_KEY, extra_args=("--no-suppress-erased",))
    try:
        pid, email = new_profile(srv)
        status, record, _ = call(srv, "POST", f"/api/cdp/gdpr/delete/{pid}")
        assert status == 200 and record["suppressedIdentifiers"] == 0, record
        status, body, _ = call(srv, "POST", "/api/cdp/gdpr/suppression/check", {"type": "email", "value": email})
        assert status == 200 and body == {"suppressed": False}, body
        status, body, _ = call(srv, "POST", "/api/cdp/events", {"type": "page_view", "email": email})
        assert status == 201, body  # a new profile: the person starts afresh
        assert body["profileId"] != pid
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_delete_profile_is_an_erasure_request(server):
    pid, email = new_profile(server)
    status, body, _ = call(server, "DELETE", f"/api/cdp/profiles/{pid}")
    assert status == 200, body
    assert body["deleted"] == pid and body["request"]["status"] == "completed"


@pytest.mark.parametrize("method,path,body,code,field", [
    ("POST", "/api/cdp/gdpr/export/nobody", None, 404, None),
    ("POST", "/api/cdp/gdpr/delete/nobody", None, 404, None),
    ("GET", "/api/cdp/gdpr/requests/gdpr_nothing", None, 404, None),
    ("GET", "/api/cdp/gdpr/requests?type=wipe", None, 400, "type"),
    ("GET", "/api/cdp/gdpr/requests?limit=0", None, 400, "limit"),
    ("POST", "/api/cdp/gdpr/suppression/check", {"type": "email", "value": "not an email"}, 400, "value"),
    ("POST", "/api/cdp/gdpr/suppression/check", {"type": "fax", "value": "1"}, 400, "type"),
    ("POST", "/api/cdp/gdpr/suppression/lift", {"value": "x@example.com"}, 400, "type"),
])
def test_gdpr_errors(server, method, path, body, code, field):
    status, resp, _ = call(server, method, path, body)
    assert status == code, resp
    if field is not None:
        assert resp["error"]["field"] == field, resp


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/cdp/gdpr/export/x"), ("POST", "/api/cdp/gdpr/delete/x"), ("GET", "/api/cdp/gdpr/requests"),
    ("GET", "/api/cdp/gdpr/requests/x"), ("POST", "/api/cdp/gdpr/suppression/check"),
])
def test_gdpr_routes_require_the_key(server, method, path):
    status, body, _ = server.request(method, path, None, key="wrong")
    assert status == 401, body


def test_audit_log_over_http(server):
    pid, _ = new_profile(server)
    status, body, _ = call(server, "GET", f"/api/cdp/profiles/{pid}")
    assert status == 200, body
    status, body, _ = call(server, "GET", "/api/cdp/audit", params={"target": pid})
    assert status == 200, body
    assert [e["operation"] for e in body["items"]] == ["profiles.get", "profiles.create"]
    assert {e["principal"] for e in body["items"]} == {"api-key"}
    status, body, _ = call(server, "GET", "/api/cdp/audit/verify")
    assert status == 200 and body["ok"] is True, body
    status, body, _ = call(server, "GET", "/api/cdp/audit", params={"limit": "0"})
    assert status == 400 and body["error"]["field"] == "limit", body
    status, body, _ = server.request("GET", "/api/cdp/audit/verify", None, key="wrong")
    assert status == 401, body
