# Copyright 2026 The libcdp Authors.
#
# cdp-server's governance (issue 5): API keys map to principals, 403 where a principal may not, responses filtered
# to what it may read, and 401 for a missing, malformed or wrong key on every route.
#
#   CDP_SERVER_BIN=build/examples/server/cdp-server /usr/bin/python3 -m pytest tests/server/test_governance.py -q

import os
import re
import uuid

import pytest

import server_process
from server_process import SERVER_BIN

ADMIN_KEY = "gov-admin-" + uuid.uuid4().hex

POLICY = {
    "classification": {"attributes.customFields.ssn": "sensitive"},
    "roles": {"analyst": {"read": ["public", "internal"]},
              "support": {"read": ["public", "internal", "pii"], "write": ["internal", "pii"],
                          "operations": ["export"]},
              "collector": {"read": ["public"], "write": ["public", "internal", "pii"]}},
    "principals": {"ann": {"roles": ["analyst"]}, "sam": {"roles": ["support"]}, "root": {"roles": ["admin"]},
                   "col": {"roles": ["collector"]}},
}

# Every route of the API, with a body where it takes one (a 401 must come before any validation).
ROUTES = [
    ("GET", "/api/cdp/profiles/p1"), ("POST", "/api/cdp/profiles"), ("PUT", "/api/cdp/profiles/p1"),
    ("PATCH", "/api/cdp/profiles/p1"), ("DELETE", "/api/cdp/profiles/p1"), ("POST", "/api/cdp/profiles/search"),
    ("POST", "/api/cdp/profiles/merge"), ("GET", "/api/cdp/profiles/p1/timeline"),
    ("GET", "/api/cdp/profiles/p1/events"), ("GET", "/api/cdp/profiles/p1/sessions"),
    ("GET", "/api/cdp/profiles/p1/identity"), ("POST", "/api/cdp/profiles/p1/unmerge"),
    ("GET", "/api/cdp/identity/rules"), ("PUT", "/api/cdp/identity/rules"), ("GET", "/api/cdp/identity/stats"),
    ("POST", "/api/cdp/identity/identify"), ("GET", "/api/cdp/identity/proposals"),
    ("POST", "/api/cdp/segments"), ("GET", "/api/cdp/segments"), ("POST", "/api/cdp/segments/estimate"),
    ("GET", "/api/cdp/segments/seg_x/members"), ("POST", "/api/cdp/segments/seg_x/export"),
    ("GET", "/api/cdp/audiences"), ("POST", "/api/cdp/events"), ("GET", "/api/cdp/events"),
    ("POST", "/api/cdp/events/batch"), ("GET", "/api/cdp/stats"), ("POST", "/api/cdp/consent"),
    ("GET", "/api/cdp/consent/p1"), ("POST", "/api/cdp/gdpr/export/p1"), ("POST", "/api/cdp/gdpr/delete/p1"),
    ("GET", "/api/cdp/gdpr/requests"), ("POST", "/api/cdp/gdpr/suppression/check"), ("GET", "/api/cdp/audit"),
    ("GET", "/api/cdp/audit/verify"), ("GET", "/api/cdp/governance/policy"), ("PUT", "/api/cdp/governance/policy"),
    ("GET", "/api/cdp/governance/keys"), ("POST", "/api/cdp/governance/keys"),
    ("DELETE", "/api/cdp/governance/keys/key_x"), ("GET", "/api/cdp/governance/access"),
    ("GET", "/api/cdp/retention/policies"), ("PUT", "/api/cdp/retention/policies"),
    ("POST", "/api/cdp/retention/run"), ("GET", "/api/cdp/retention/runs"),
    ("POST", "/api/cdp/analytics/funnel"), ("POST", "/api/cdp/analytics/cohorts"),
    ("GET", "/api/cdp/analytics/attribution"), ("POST", "/api/cdp/analytics/attribution"),
    ("POST", "/api/cdp/analytics/journeys"), ("POST", "/api/cdp/analytics/trends"),
    ("GET", "/api/cdp/analytics/overview"), ("GET", "/api/cdp/analytics/quality"),
    ("GET", "/api/cdp/no/such/route"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"cdp-server binary not found at {SERVER_BIN}; build it or set CDP_SERVER_BIN")
    data = tmp_path_factory.mktemp("cdp-governance")
    srv = server_process.ServerProcess(data, ADMIN_KEY)
    status, body, _ = srv.request("PUT", "/api/cdp/governance/policy", POLICY, key=ADMIN_KEY)
    assert status == 200, body
    keys = {}
    for principal in ("ann", "sam", "root", "col"):
        status, body, _ = srv.request("POST", "/api/cdp/governance/keys", {"principal": principal}, key=ADMIN_KEY)
        assert status == 201, body
        keys[principal] = body
    status, body, _ = srv.request("POST", "/api/cdp/profiles", {
        "externalIds": {"email": "ada@example.com"},
        "attributes": {"email": "ada@example.com", "country": "GB", "customFields": {"ssn": "078-05-1120"}}},
        key=ADMIN_KEY)
    assert status == 201, body
    yield srv, keys, body["id"], data
    code = srv.stop()
    assert code == 0, srv.stderr()


def test_a_key_of_one_role_never_reads_what_that_role_may_not(setup):
    srv, keys, pid, _ = setup
    ann, sam = keys["ann"]["key"], keys["sam"]["key"]
    status, doc, _ = srv.request("GET", f"/api/cdp/profiles/{pid}", key=ann)
    assert status == 200, doc
    assert doc["attributes"] == {"country": "GB"}
    assert "externalIds" not in doc
    status, doc, _ = srv.request("GET", f"/api/cdp/profiles/{pid}", key=sam)
    assert doc["attributes"]["email"] == "ada@example.com"
    assert "ssn" not in doc["attributes"].get("customFields", {})
    status, page, _ = srv.request("POST", "/api/cdp/profiles/search",
                                  {"conditions": [{"field": "attributes.country", "operator": "=", "value": "GB"}]},
                                  key=ann)
    assert status == 200, page
    assert all("email" not in p.get("attributes", {}) for p in page["items"])
    status, body, _ = srv.request("POST", "/api/cdp/profiles/search",
                                  {"conditions": [{"field": "attributes.email", "operator": "=",
                                                   "value": "ada@example.com"}]}, key=ann)
    assert status == 403, body
    assert body["error"]["code"] == "permission_denied"
    # Export: sam may (without the sensitive field), ann may not.
    status, export, _ = srv.request("POST", f"/api/cdp/gdpr/export/{pid}", key=sam)
    assert status == 200, export
    assert export["profile"]["attributes"]["email"] == "ada@example.com"
    assert "078-05-1120" not in str(export)
    status, body, _ = srv.request("POST", f"/api/cdp/gdpr/export/{pid}", key=ann)
    assert status == 403, body


def test_a_segment_whose_rule_tests_an_unreadable_field_is_not_shown(setup):
    srv, keys, pid, _ = setup
    ann = keys["ann"]["key"]
    created = {}
    for name, field, value in (("by ssn", "attributes.customFields.ssn", "078-05-1120"),
                               ("by country", "attributes.country", "GB")):
        status, seg, _ = srv.request("POST", "/api/cdp/segments",
                                     {"name": name, "rule": {"field": field, "operator": "=", "value": value}},
                                     key=ADMIN_KEY)
        assert status == 201, seg
        created[name] = seg["id"]
    ssn = created["by ssn"]
    for method, path in (("GET", f"/api/cdp/segments/{ssn}"), ("GET", f"/api/cdp/segments/{ssn}/members"),
                         ("GET", f"/api/cdp/segments/{ssn}/changes"), ("POST", f"/api/cdp/segments/{ssn}/export")):
        status, body, _ = srv.request(method, path, key=ann)
        assert status == 403, (path, body)
        assert body["error"]["code"] == "permission_denied"
        assert body["error"]["field"] == "attributes.customFields.ssn"
    status, listed, _ = srv.request("GET", "/api/cdp/segments", key=ann)
    assert status == 200, listed
    ids = {s["id"] for s in listed["segments"]}
    assert created["by country"] in ids and ssn not in ids
    status, doc, _ = srv.request("GET", f"/api/cdp/profiles/{pid}", key=ann)
    assert status == 200, doc
    assert created["by country"] in doc["segments"] and ssn not in doc["segments"]
    status, doc, _ = srv.request("GET", f"/api/cdp/profiles/{pid}", key=ADMIN_KEY)
    assert ssn in doc["segments"]  # the admin sees it


def test_writes_and_operations_a_principal_lacks_are_403(setup):
    srv, keys, pid, _ = setup
    ann, sam, root = keys["ann"]["key"], keys["sam"]["key"], keys["root"]["key"]
    status, body, _ = srv.request("PATCH", f"/api/cdp/profiles/{pid}", {"attributes": {"country": "FR"}}, key=ann)
    assert status == 403, body
    assert body["error"]["field"] == "attributes.country"
    status, body, _ = srv.request("PATCH", f"/api/cdp/profiles/{pid}", {"attributes": {"city": "Oslo"}}, key=sam)
    assert status == 200, body
    status, body, _ = srv.request("PATCH", f"/api/cdp/profiles/{pid}",
                                  {"attributes": {"customFields": {"ssn": "1"}}}, key=sam)
    assert status == 403, body
    for method, path in (("GET", "/api/cdp/audit"), ("DELETE", f"/api/cdp/profiles/{pid}"),
                         ("PUT", "/api/cdp/governance/policy"), ("GET", "/api/cdp/governance/keys")):
        status, body, _ = srv.request(method, path, {} if method == "PUT" else None, key=sam)
        assert status == 403, (method, path, body)
    status, me, _ = srv.request("GET", "/api/cdp/governance/access", key=sam)
    assert status == 200 and me["principal"] == "sam" and me["operations"] == ["export"], me
    status, body, _ = srv.request("GET", "/api/cdp/governance/access", key=sam, params={"principal": "ann"})
    assert status == 403, body
    # A principal given the admin role may do what --api-key may; the audit log names each principal.
    status, body, _ = srv.request("GET", "/api/cdp/audit", key=root, params={"principal": "sam"})
    assert status == 200, body
    assert body["items"] and all(e["principal"] == "sam" for e in body["items"])
    assert any(e["outcome"] == "permission_denied" for e in body["items"])


def wrong_secret(key):
    """The key with its last hex digit changed (to a different digit, whatever it was)."""
    return key[:-1] + ("1" if key[-1] == "0" else "0")


def every_route(srv):
    """(method, path) of every route the server registered (GET /api/cdp/routes), each path pattern's groups
    filled with a sample value; and the unknown route."""
    status, body, _ = srv.request("GET", "/api/cdp/routes", key=ADMIN_KEY)
    assert status == 200, body
    out = []
    for route in body["routes"]:
        path = re.sub(r"\((?:[^()]|\([^()]*\))*\)", lambda g: g.group(0)[1:-1].split("|")[0]
                      if "|" in g.group(0) else "x1", route["pattern"])
        out += [(m, path) for m in route["methods"]]
    return out + [("GET", "/api/cdp/no/such/route")]


def test_no_api_route_is_registered_outside_the_key_check():
    # GET /api/cdp/routes lists what Api::Route registered, and Api::Route checks the key: a route registered on
    # the HTTP server directly would be in neither. None is.
    direct = []
    for source in (server_process.REPO_ROOT / "examples" / "server").glob("*.cc"):
        text = source.read_text()
        direct += [(source.name, m.group(0)) for m in
                   re.finditer(r'\bhttp(?:->|\.)(?:Get|Post|Put|Patch|Delete|Options)\(\s*(?:R"\()?"?/api', text)]
    assert direct == []


def test_missing_malformed_wrong_and_revoked_keys_are_401_on_every_route(setup):
    srv, keys, _, _ = setup
    bad_headers = [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic " + ADMIN_KEY},
                   {"Authorization": "Bearer " + ADMIN_KEY + "x"}, {"Authorization": "Bearer cdpk_garbage"},
                   {"Authorization": "Bearer " + wrong_secret(keys["ann"]["key"])}]
    routes = every_route(srv)
    # The table is the server's own: every route listed by hand here is in it, and more.
    listed = {(m, re.sub(r"/(p1|seg_x|key_x)(?=/|$)", "/x1", p)) for m, p in ROUTES}
    assert listed <= set(routes), sorted(listed - set(routes))
    assert len(routes) >= 90, len(routes)
    for method, path in routes:
        for headers in bad_headers:
            status, body, resp_headers = srv.raw(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else b"",
                                                 headers)
            assert status == 401, (method, path, headers, status, body)
            assert body["error"]["code"] == "unauthenticated"
            assert resp_headers["WWW-Authenticate"] == "Bearer"
    doomed = srv.request("POST", "/api/cdp/governance/keys", {"principal": "ann"}, key=ADMIN_KEY)[1]
    assert srv.request("GET", "/api/cdp/stats", key=doomed["key"])[0] == 200
    status, body, _ = srv.request("DELETE", f"/api/cdp/governance/keys/{doomed['id']}", key=ADMIN_KEY)
    assert status == 200, body
    assert srv.request("GET", "/api/cdp/stats", key=doomed["key"])[0] == 401


def test_keys_in_the_database_are_required_without_an_api_key_flag(setup, tmp_path):
    _, keys, _, data = setup
    # A server over a new directory, given no key: it makes one up for the run; keys issued there work too.
    srv = server_process.ServerProcess(tmp_path / "db", None)
    try:
        run_key = srv.generated_key
        assert run_key, srv.startup_lines
        assert srv.request("GET", "/api/cdp/stats", key=None)[0] == 401
        status, body, _ = srv.request("PUT", "/api/cdp/governance/policy", POLICY, key=run_key)
        assert status == 200, body
        issued = srv.request("POST", "/api/cdp/governance/keys", {"principal": "root"}, key=run_key)[1]
        assert srv.request("GET", "/api/cdp/stats", key=issued["key"])[0] == 200
        assert srv.request("GET", "/api/cdp/stats", key=keys["root"]["key"])[0] == 401  # another database's key
        status, body, _ = srv.request("DELETE", f"/api/cdp/governance/keys/{issued['id']}", key=issued["key"])
        assert status == 200, body
        assert srv.request("GET", "/api/cdp/stats", key=issued["key"])[0] == 401
        assert srv.request("GET", "/api/cdp/stats", key=None)[0] == 401
    finally:
        assert srv.stop() == 0, srv.stderr()
    # Restarted without a flag over a database that issued keys: no key is made up; the issued ones are needed.
    srv = server_process.ServerProcess(tmp_path / "db", None)
    try:
        assert srv.generated_key is None, srv.startup_lines
        assert srv.request("GET", "/api/cdp/stats", key=None)[0] == 401
        assert srv.request("GET", "/api/cdp/stats", key=run_key)[0] == 401
        # Without a write key, the Segment routes of a server that needs keys are closed too.
        status, body, _ = srv.request("POST", "/v1/track", {"userId": "u1", "event": "x"}, key=None)
        assert status == 401, body
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_retention_policies_runs_and_their_records(setup):
    srv, keys, _, _ = setup
    root, sam = keys["root"]["key"], keys["sam"]["key"]
    status, body, _ = srv.request("POST", "/api/cdp/profiles", {"id": "ret-p"}, key=root)
    assert status == 201, body
    for ts in ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"):
        status, body, _ = srv.request("POST", "/api/cdp/events",
                                      {"type": "page_view", "profileId": "ret-p", "timestamp": ts}, key=root)
        assert status in (200, 201), body
    status, body, _ = srv.request("PUT", "/api/cdp/retention/policies", {"policies": [
        {"name": "views", "target": "events", "eventType": "page_view", "olderThan": "1y"}]}, key=root)
    assert status == 200, body
    assert body["policies"][0]["id"].startswith("ret_")
    status, body, _ = srv.request("PUT", "/api/cdp/retention/policies",
                                  {"policies": [{"name": "x", "target": "events", "olderThan": "soon"}]}, key=root)
    assert status == 400 and body["error"]["field"] == "policies[0].olderThan", body
    assert srv.request("POST", "/api/cdp/retention/run", key=sam)[0] == 403
    status, run, _ = srv.request("POST", "/api/cdp/retention/run", key=root)
    assert status == 200, run
    assert run["eventsPurged"] == 2 and run["status"] == "completed"
    status, body, _ = srv.request("GET", "/api/cdp/profiles/ret-p/events", key=root)
    assert status == 200 and body["items"] == [], body
    status, runs, _ = srv.request("GET", "/api/cdp/retention/runs", key=root, params={"limit": 1})
    assert status == 200 and runs["items"][0]["id"] == run["id"], runs
    # A misspelt filter is an error, not ignored.
    for path, params in (("/api/cdp/retention/runs", {"bogus": 1}), ("/api/cdp/audit", {"outcome": "ok"})):
        status, body, _ = srv.request("GET", path, key=root, params=params)
        assert status == 400 and body["error"]["field"] in ("bogus", "outcome"), (path, body)


def test_the_retention_interval_is_a_flag(tmp_path):
    srv = server_process.ServerProcess(tmp_path / "db", None, extra_args=("--retention-interval", "0"))
    try:
        status, body, _ = srv.request("GET", "/api/cdp/retention/policies", key=srv.generated_key)
        assert status == 200 and body["intervalSeconds"] == 0, body
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_a_writer_that_may_not_read_identifiers_is_not_told_who_holds_them(setup):
    srv, keys, pid, _ = setup
    col = keys["col"]["key"]
    status, body, _ = srv.request("POST", "/api/cdp/events", {"type": "page_view", "email": "ada@example.com"},
                                  key=col)
    assert status in (200, 201), body
    assert "profileId" not in body and "sessionId" not in body and body["linksHidden"] is True, body
    status, batch, _ = srv.request("POST", "/api/cdp/events/batch",
                                   [{"type": "page_view", "email": "ada@example.com"},
                                    {"type": "page_view", "profileId": pid}], key=col)
    assert status == 200, batch
    first, second = batch["results"]
    assert "profileId" not in first and first["linksHidden"] is True, first
    assert second["profileId"] == pid, second
    status, identified, _ = srv.request("POST", "/api/cdp/identity/identify",
                                        {"identifiers": {"email": "ada@example.com"}}, key=col)
    assert status == 200, identified
    assert "profileId" not in identified and identified["linksHidden"] is True, identified
    # A profile write naming an identifier it may not read is refused alike, whether the value is held or not.
    status, taken, _ = srv.request("POST", "/api/cdp/profiles", {"externalIds": {"email": "ada@example.com"}},
                                   key=col)
    assert status == 403, taken
    assert taken["error"]["field"] == "externalIds.email" and pid not in taken["error"]["message"], taken
    status, free, _ = srv.request("POST", "/api/cdp/profiles", {"externalIds": {"email": "unheld@example.com"}},
                                  key=col)
    assert (status, free) == (403, taken)
    # The event went to the right profile all the same.
    status, events, _ = srv.request("GET", f"/api/cdp/profiles/{pid}/events", key=ADMIN_KEY)
    assert status == 200, events
    assert any(e["id"] == body["eventId"] for e in events["items"]), events


def test_the_segment_routes_write_as_their_principal(tmp_path):
    import base64
    import json

    write_key = "wk-" + uuid.uuid4().hex
    basic = {"Authorization": "Basic " + base64.b64encode((write_key + ":").encode()).decode()}
    srv = server_process.ServerProcess(tmp_path, ADMIN_KEY,
                                       extra_args=["--write-key", write_key, "--write-key-principal", "ann"])
    try:
        status, body, _ = srv.request("PUT", "/api/cdp/governance/policy", POLICY, key=ADMIN_KEY)
        assert status == 200, body
        # ann (an analyst) may write nothing: the identify is refused whole, and nothing is stored.
        identify = json.dumps({"userId": "u-1", "traits": {"email": "u1@example.com"}}).encode()
        status, body, _ = srv.raw("POST", "/v1/identify", identify, basic)
        assert status == 403, body
        assert body["error"]["code"] == "permission_denied"
        status, stats, _ = srv.request("GET", "/api/cdp/stats", key=ADMIN_KEY)
        assert stats["profiles"] == 0, stats
        # The audit log names the principal the route ran as.
        status, audit, _ = srv.request("GET", "/api/cdp/audit", params={"principal": "ann"}, key=ADMIN_KEY)
        assert status == 200 and audit["items"], audit
    finally:
        assert srv.stop() == 0, srv.stderr()
    # The default is the admin "local": the same identify is stored.
    srv = server_process.ServerProcess(tmp_path, ADMIN_KEY, extra_args=["--write-key", write_key])
    try:
        status, body, _ = srv.raw("POST", "/v1/identify", identify, basic)
        assert status == 200, body
        status, stats, _ = srv.request("GET", "/api/cdp/stats", key=ADMIN_KEY)
        assert stats["profiles"] == 1, stats
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_a_restricted_write_key_principal_ingests_with_dedupe_and_retries_tell_it_nothing(tmp_path):
    # The deduplicator's idempotency keys are admin-only: its bookkeeping must not be refused for the route's
    # principal, and a retry's answer must not name the profile to a principal that may not read the links.
    import base64
    import json

    write_key = "wk-" + uuid.uuid4().hex
    basic = {"Authorization": "Basic " + base64.b64encode((write_key + ":").encode()).decode()}
    identify = json.dumps({"type": "identify", "userId": "u-7", "messageId": "m-identify",
                           "traits": {"plan": "basic"}}).encode()
    track = json.dumps({"type": "track", "userId": "u-7", "event": "Signed Up", "messageId": "m-track",
                        "originalTimestamp": "2026-03-01T11:59:00Z", "sentAt": "2026-03-01T11:59:01Z"}).encode()
    batch = json.dumps({"batch": [json.loads(identify), json.loads(track)]}).encode()
    args = ["--write-key", write_key, "--write-key-principal", "col"]
    srv = server_process.ServerProcess(tmp_path, ADMIN_KEY, extra_args=args)
    try:
        status, body, _ = srv.request("PUT", "/api/cdp/governance/policy", POLICY, key=ADMIN_KEY)
        assert status == 200, body
        for route, message in (("/v1/identify", identify), ("/v1/track", track)):
            status, body, _ = srv.raw("POST", route, message, basic)
            assert status == 200, body
        later = json.dumps({"type": "identify", "userId": "u-7", "messageId": "m-later",
                            "traits": {"plan": "pro"}}).encode()
        status, body, _ = srv.raw("POST", "/v1/identify", later, basic)
        assert status == 200, body
        for route, message in (("/v1/identify", identify), ("/v1/track", track)):  # retries, from memory
            status, body, _ = srv.raw("POST", route, message, basic)
            assert status == 200, body
            assert body.get("duplicate") is True and "profileId" not in body, body
    finally:
        assert srv.stop() == 0, srv.stderr()
    srv = server_process.ServerProcess(tmp_path, ADMIN_KEY, extra_args=args)
    try:
        status, body, _ = srv.raw("POST", "/v1/batch", batch, basic)  # retries, from the database
        assert status == 200, body
        for item in body["results"]:
            assert item["status"] == "duplicate" and "profileId" not in item, body
        status, found, _ = srv.request("POST", "/api/cdp/profiles/search",
                                       {"conditions": [{"field": "externalIds.customerId", "operator": "=",
                                                        "value": "u-7"}]}, key=ADMIN_KEY)
        assert status == 200 and len(found["items"]) == 1, found
        profile = found["items"][0]
        assert profile["attributes"]["customFields"]["plan"] == "pro", profile  # no retry applied "basic" again
        status, events, _ = srv.request("GET", f"/api/cdp/profiles/{profile['id']}/events", key=ADMIN_KEY)
        assert status == 200 and len(events["items"]) == 1, events
    finally:
        assert srv.stop() == 0, srv.stderr()
