# Copyright 2026 The libcdp Authors.
#
# The web console cdp-server serves at /console/ (docs/console.md): its files and headers, and the console driven
# in Debian's chromium (tests/console/drive.mjs, playwright-core) against seeded data: without a key, with a wrong
# one, then overview, profile search, a profile with its identifiers and timeline, a segment's members and the
# audit log with its verification; a profile value that is HTML stays text.
#
#   npm ci --prefix tests/console          (make test-python does it; chromium from scripts/install-deps.sh)
#   CDP_SERVER_BIN=build/examples/server/cdp-server /usr/bin/python3 -m pytest tests/server/test_console.py -q
#
# Missing node, playwright-core or chromium fail the test with what installs them; nothing is skipped.

import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from server_process import REPO_ROOT, SERVER_BIN, ServerProcess

CONSOLE_DIR = REPO_ROOT / "tests" / "console"
DRIVE = CONSOLE_DIR / "drive.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
API_KEY = "console-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"cdp-server binary not found at {SERVER_BIN}; build it or set CDP_SERVER_BIN")
    srv = ServerProcess(tmp_path_factory.mktemp("cdp-console"), API_KEY)
    yield srv
    code = srv.stop()
    assert code == 0, srv.stderr()


def get(server, path):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def api(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    status, parsed, _ = server.raw(method, path, data,
                                   {"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"})
    assert status in (200, 201), (method, path, status, parsed)
    return parsed


def test_the_console_is_served_without_a_key_with_a_strict_policy(server):
    for path in ("/", "/console"):
        status, _, headers = get(server, path)
        assert status == 302 and headers["Location"] == "/console/", path
    assert get(server, "/favicon.ico")[0] == 204
    for path, kind in (("/console/", "text/html"), ("/console/app.js", "text/javascript"),
                       ("/console/style.css", "text/css")):
        status, body, headers = get(server, path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind), (path, headers["Content-Type"])
        policy = headers["Content-Security-Policy"]
        for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'",
                          "require-trusted-types-for 'script'"):
            assert directive in policy, (path, directive)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert len(body) > 500
    assert b'src="/console/app.js"' in get(server, "/console/")[1]
    assert get(server, "/console/other.js")[0] == 404
    assert get(server, "/api/cdp/stats")[0] == 401  # the data stays behind the key


def test_the_console_in_a_browser(server):
    tag = uuid.uuid4().hex[:8]
    email = f"ada-{tag}@example.com"
    created = api(server, "POST", "/api/cdp/profiles", {
        "externalIds": {"email": email, "customerId": "cust-" + tag},
        "attributes": {"firstName": "<img src=x onerror=window.__xss=1>", "lastName": "Lovelace", "country": "GB"}})
    pid = created["id"]
    now_ms = int(time.time() * 1000)
    api(server, "POST", "/api/cdp/profiles", {"externalIds": {"email": f"other-{tag}@example.com"}})
    api(server, "POST", "/api/cdp/events/batch", {"batch": [
        {"type": "page_view", "profileId": pid, "timestamp": now_ms - 60_000,
         "properties": {"path": "/shoes", "utm_source": "newsletter", "utm_medium": "email"}},
        {"type": "purchase", "profileId": pid, "timestamp": now_ms - 30_000, "properties": {"revenue": 42.5}}]})
    api(server, "POST", "/api/cdp/consent",
        {"profileId": pid, "purposes": {"email": "granted"}, "source": "console-test", "policyVersion": "v7"})
    segment_name = "Buyers " + tag
    api(server, "POST", "/api/cdp/segments", {"name": segment_name, "rule": {"event": "purchase"}})

    plan = {"url": f"http://127.0.0.1:{server.port}", "key": API_KEY, "email": email, "segment": segment_name}
    seen = run_driver(plan)

    assert seen["redirectedTo"] == "/console/"
    assert "valid API key" in seen["bannerWithoutKey"]
    assert "valid API key" in seen["bannerWithWrongKey"]
    assert seen["bannerWithKey"] == ""
    assert seen["principal"] == "as api-key"
    cards = " ".join(seen["overviewCards"])
    assert "Profiles\n2" in cards, seen["overviewCards"]
    assert seen["searchHeading"] == "Profiles"
    assert seen["searchCount"] == "1 on this page"
    assert len(seen["searchRows"]) == 1 and pid in seen["searchRows"][0] and "GB" in seen["searchRows"][0]
    assert seen["caseBlindCount"] == "1 on this page" and seen["exactCaseCount"] == "0 on this page", seen
    assert seen["profileHash"] == f"#/profile/{pid}"
    assert seen["profileTitle"] == "<img src=x onerror=window.__xss=1> Lovelace"  # shown as text
    assert seen["imagesInView"] == 0 and seen["xssRan"] is False
    assert email in seen["identifiers"] and "cust-" + tag in seen["identifiers"]
    types = [row.split("\t")[1] for row in seen["timeline"]]
    assert types == ["purchase", "page_view"], seen["timeline"]  # newest first
    assert any(segment_name in row for row in seen["segments"])
    # Analytics: one profile viewed and bought 30 s later; its purchase came through the newsletter session.
    funnel = [row.split("\t") for row in seen["funnel"]]
    assert [(r[1], r[2]) for r in funnel] == [("product_view", "0"), ("add_to_cart", "0"), ("purchase", "0")], funnel
    assert seen["attributionSummary"].startswith("purchases: 1, revenue: 42.5, unattributed: 0 (last_touch"), \
        seen["attributionSummary"]
    assert len(seen["attribution"]) == 1 and seen["attribution"][0].split("\t")[:4] == \
        ["newsletter", "email", "(none)", "1"], seen["attribution"]
    funnel2 = [row.split("\t") for row in seen["funnel2"]]
    assert [(r[1], r[2], r[3], r[5]) for r in funnel2] == [("page_view", "1", "100.0%", ""),
                                                           ("purchase", "1", "100.0%", "30 s")], funnel2
    assert "(linear, 30 days)" in seen["attributionSummary2"]
    # Cohorts by week, returning with a purchase: this week's cohort is the one profile with events, and it bought.
    assert len(seen["cohorts"]) == 1, seen["cohorts"]
    assert seen["cohorts"][0].split("\t")[1:3] == ["1", "1 (100%)"], seen["cohorts"]
    assert seen["segmentHeading"] == segment_name
    assert len(seen["segmentMembers"]) == 1 and pid in seen["segmentMembers"][0]
    operations = [row.split("\t")[3] for row in seen["auditRows"]]
    assert "profiles.search" in operations and "profiles.get" in operations, operations
    assert {row.split("\t")[2] for row in seen["auditRows"]} == {"api-key"}  # the key's principal, every call
    assert seen["verify"].startswith("chain verified"), seen["verify"]
    assert any("email: granted" in row and "console-test" in row and "v7" in row for row in seen["consentHistory"]), \
        seen["consentHistory"]
    assert seen["exportFile"] == f"{pid}-export.json"
    assert seen["exportSummary"].startswith("Exported (request gdpr_") and "2 events" in seen["exportSummary"], \
        seen["exportSummary"]
    assert seen["afterDismiss"] == 1  # declined: still the profile's page
    assert pid in seen["confirmText"]
    assert ": completed in " in seen["erased"], seen["erased"]
    assert "does not exist" in seen["bannerAfterErasure"], seen["bannerAfterErasure"]
    status, body, _ = server.raw("GET", f"/api/cdp/profiles/{pid}", None, {"Authorization": "Bearer " + API_KEY})
    assert status == 404, body  # erased for real
    assert seen["consoleErrors"] == [], seen["consoleErrors"]


def run_driver(plan):
    """Runs drive.mjs with `plan` in its own process group (a timeout kills chromium too); returns what it saw."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: run scripts/install-deps.sh")
    if not (CONSOLE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is missing: run npm ci --prefix tests/console")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium not found at {CHROMIUM}: run scripts/install-deps.sh")
    proc = subprocess.Popen(["node", str(DRIVE), json.dumps(plan)], cwd=CONSOLE_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "CHROMIUM": CHROMIUM},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail("the console driver did not finish in 180 s: " + err[-3000:])
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_a_restricted_key_sees_its_refusals_and_only_its_fields(server):
    # A principal that reads public and internal fields (not personal ones) and may not read the audit log.
    api(server, "PUT", "/api/cdp/governance/policy",
        {"roles": {"viewer": {"read": ["public", "internal"]}}, "principals": {"vic": {"roles": ["viewer"]}}})
    key = api(server, "POST", "/api/cdp/governance/keys", {"principal": "vic"})["key"]
    email = f"hidden-{uuid.uuid4().hex[:8]}@example.com"
    pid = api(server, "POST", "/api/cdp/profiles",
              {"externalIds": {"email": email}, "attributes": {"country": "NO", "email": email}})["id"]
    seen = run_driver({"url": f"http://127.0.0.1:{server.port}", "key": key, "restricted": True, "profileId": pid})
    assert seen["hashAfterKeyLink"] == "#/overview"  # the key left the address bar
    assert seen["principalNewTab"] == "as vic"
    assert "valid API key" in seen["bannerBeforeKeyLink"]
    assert seen["hashAfterKeyLinkSameTab"] == "#/overview"
    assert seen["principal"] == "as vic"
    # Privacy: its own access shown; the policy, keys and retention refused in place (admin only).
    assert "vic" in seen["privacyText"] and "viewer" in seen["privacyText"], seen["privacyText"]
    assert seen["privacyText"].count("This key may not read this") >= 3, seen["privacyText"]
    assert seen["auditBanner"].startswith("This key may not do that"), seen["auditBanner"]
    assert seen["profileBanner"] == "", seen["profileBanner"]
    assert pid in seen["profileText"] and "NO" in seen["profileText"]  # the fields it may read are shown
    assert email not in seen["profileText"]  # personal ones are not (the API leaves them out)
    assert "This key may not read this" in seen["profileText"]  # a refused section says so in place
    assert seen["consoleErrors"] == [], seen["consoleErrors"]


FEBRL = REPO_ROOT / "tests" / "data" / "febrl" / "dataset3.csv"


def febrl_profiles(n):
    """The first n records of FEBRL dataset3 as profile documents (as tests/identity/matching_engine_test.cc)."""
    lines = FEBRL.read_text().splitlines()
    header = [c.strip() for c in lines[0].split(",")]
    out = []
    for line in lines[1:n + 1]:
        row = dict(zip(header, [c.strip() for c in line.split(", ")]))
        attributes = {k: row[f] for k, f in (("firstName", "given_name"), ("lastName", "surname"),
                                              ("postalCode", "postcode"), ("city", "suburb")) if row[f]}
        attributes["customFields"] = {"birthDate": row["date_of_birth"]} if row["date_of_birth"] else {}
        out.append({"attributes": attributes})
    return out


def test_changes_through_the_console(tmp_path):
    srv = ServerProcess(tmp_path, API_KEY)
    try:
        check_changes(srv)
    finally:
        code = srv.stop()
    assert code == 0, srv.stderr()


def check_changes(server):
    tag = uuid.uuid4().hex[:8]
    a_email, b_email = f"ann-{tag}@example.com", f"ann.work-{tag}@example.com"
    a = api(server, "POST", "/api/cdp/profiles", {"externalIds": {"email": a_email}, "attributes": {"firstName": "Ann"}})
    b = api(server, "POST", "/api/cdp/profiles", {"externalIds": {"email": b_email}})
    api(server, "POST", "/api/cdp/events", {"type": "purchase", "profileId": a["id"], "properties": {"revenue": 9}})
    api(server, "POST", "/api/cdp/events", {"type": "page_view", "profileId": b["id"], "properties": {"path": "/b"}})
    for i in range(0, 1000, 500):  # people with no identifier in common, some of them recorded twice
        created = api(server, "POST", "/api/cdp/profiles/batch", febrl_profiles(1000)[i:i + 500])
        assert created["rejected"] == 0, created
    segment = "Console buyers " + tag
    export = api(server, "POST", f"/api/cdp/gdpr/export/{b['id']}")  # a request the Privacy view lists
    seen = run_driver({"url": f"http://127.0.0.1:{server.port}", "key": API_KEY, "changes": True,
                       "profileId": a["id"], "otherId": b["id"], "otherEmail": b_email, "segment": segment})
    assert seen["consoleErrors"] == [], seen["consoleErrors"]
    # The refusals the steps provoked, and no other: the 401s of the page loaded before its key, a patch with a
    # number for a country and an unknown rule member.
    refusals = [r for r in seen.get("refusals", []) if not r.startswith("401 ")]
    assert refusals == [f"400 /api/cdp/profiles/{a['id']}", "400 /api/cdp/segments/estimate"], seen.get("refusals")

    # The patch, shown after the page is rendered again and stored.
    assert seen["patchNotice"] == "Profile patched.", seen["patchNotice"]
    assert "Oslo" in seen["attributes"] and "gold" in seen["attributes"], seen["attributes"]
    stored = api(server, "GET", f"/api/cdp/profiles/{a['id']}")
    assert stored["attributes"]["city"] == "Oslo" and stored["attributes"]["customFields"]["tier"] == "gold"
    # Bad input: not JSON is refused before any call, and what was typed stays; the API's refusal names the field.
    assert "the patch is not JSON" in seen["badPatchBanner"], seen["badPatchBanner"]
    assert seen["badPatchKept"] == '{"attributes": '
    assert "attributes.country" in seen["refusedPatchBanner"], seen["refusedPatchBanner"]
    assert "country" not in api(server, "GET", f"/api/cdp/profiles/{a['id']}")["attributes"]

    # The consent statement, in the state and the history.
    assert seen["consentNotice"] == "Consent recorded: sms denied.", seen["consentNotice"]
    assert any("sms: denied" in row and "console" in row and "v9" in row for row in seen["consentHistory"]), \
        seen["consentHistory"]
    assert api(server, "GET", f"/api/cdp/consent/{a['id']}")["purposes"]["sms"]["granted"] is False

    # The merge (after a confirmation naming both) and its undoing.
    assert seen["dialogs"][0].startswith(f"Merge {b['id']} into {a['id']}?"), seen["dialogs"]
    assert seen["mergeNotice"].startswith(f"Merged {b['id']} into {a['id']} (merge mrg_"), seen["mergeNotice"]
    assert a_email in seen["identifiersMerged"] and b_email in seen["identifiersMerged"], seen["identifiersMerged"]
    assert len(seen["merges"]) == 1 and "same person, two emails" in seen["merges"][0], seen["merges"]
    assert " undone: " + b["id"] + " restored, 1 events moved back." in seen["unmergeNotice"], seen["unmergeNotice"]
    assert b_email not in seen["identifiersUnmerged"], seen["identifiersUnmerged"]
    assert seen["unmergeButtons"] == 0 and len(seen["mergesAfter"]) == 1, seen["mergesAfter"]
    restored = api(server, "GET", f"/api/cdp/profiles/{b['id']}")
    assert restored["id"] == b["id"] and restored["externalIds"]["email"] == b_email
    assert api(server, "GET", f"/api/cdp/profiles/{a['id']}")["externalIds"]["email"] == a_email

    # A segment: a bad rule refused naming its part, counted, created, then deleted.
    assert "rule" in seen["badRuleBanner"], seen["badRuleBanner"]
    assert seen["estimate"] == "1 profile match now", seen["estimate"]
    assert seen["createNotice"] == f'Segment "{segment}" created: 1 members.', seen["createNotice"]
    assert seen["segmentSize"].startswith("1 member"), seen["segmentSize"]
    assert len(seen["segmentMembers"]) == 1 and a["id"] in seen["segmentMembers"][0]
    # Its rule edited: counted, saved; the members follow.
    assert seen["editEstimate"] == "1 profile match now", seen["editEstimate"]
    assert seen["saveNotice"] == f'Segment "{segment}" saved: 1 members.', seen["saveNotice"]
    assert len(seen["editedMembers"]) == 1 and b["id"] in seen["editedMembers"][0], seen["editedMembers"]
    assert seen["deleteNotice"] == f'Segment "{segment}" deleted.'
    assert not any(segment in row for row in seen["segmentsAfter"])
    segment_id = seen["segmentHash"].split("/")[-1]
    status, _, _ = server.raw("GET", f"/api/cdp/segments/{segment_id}", None, {"Authorization": "Bearer " + API_KEY})
    assert status == 404

    # A manual list: two added (by id and by email), one removed; a failed change leaves no stale notice.
    assert seen["manualNotice"].startswith(f'Segment "{segment} (manual)" created: 0 members'), seen["manualNotice"]
    assert seen["addNotice"] == "2 added, 0 unchanged, 0 not found.", seen["addNotice"]
    assert len(seen["manualMembers"]) == 2, seen["manualMembers"]
    assert seen["removeNotice"] == "1 removed, 0 unchanged, 0 not found.", seen["removeNotice"]
    assert len(seen["manualMembersAfter"]) == 1 and b["id"] in seen["manualMembersAfter"][0]
    assert "name at least one profile id or identifier" in seen["emptyItemsBanner"]
    assert seen["noticeAfterFailure"] is False
    manual = [s for s in api(server, "GET", "/api/cdp/segments")["segments"] if s["name"] == segment + " (manual)"]
    assert len(manual) == 1 and manual[0]["size"] == 1, manual

    # Audiences of that list: all of it, then those of it who consented to email (nobody).
    assert seen["audienceNotice"] == f'Audience "{segment} audience" created: 1 members.', seen["audienceNotice"]
    assert seen["audienceSize"].startswith("1 member"), seen["audienceSize"]
    assert "Segments combined\n1" in seen["audienceParts"], seen["audienceParts"]
    assert len(seen["audienceMembers"]) == 1 and b["id"] in seen["audienceMembers"][0], seen["audienceMembers"]
    assert seen["emailAudienceNotice"] == f'Audience "{segment} emailable" created: 0 members.'
    assert "Without consent\n1" in seen["emailAudienceParts"], seen["emailAudienceParts"]
    assert seen["audienceDeleteNotice"] == f'Audience "{segment} emailable" deleted.'
    assert any(f"{segment} audience" in row for row in seen["audiencesAfter"])
    assert not any(f"{segment} emailable" in row for row in seen["audiencesAfter"])
    listed = {a["name"]: a for a in api(server, "GET", "/api/cdp/audiences")["audiences"]}
    assert listed[f"{segment} audience"]["size"] == 1 and f"{segment} emailable" not in listed

    # Duplicates: found, one proposal accepted (a merge), the next rejected.
    assert "Profiles\n1002" in " ".join(seen["identityCards"]), seen["identityCards"]
    assert seen["proposalsBefore"] == 0
    assert seen["duplicatesNotice"].startswith("Duplicate detection over 1002 profiles: "), seen["duplicatesNotice"]
    assert len(seen["proposals"]) >= 2, seen["proposals"]
    assert seen["acceptNotice"].startswith(f"Proposal {seen['accepted']}: accepted (merge mrg_"), seen["acceptNotice"]
    assert seen["rejectNotice"] == f"Proposal {seen['rejected']}: rejected.", seen["rejectNotice"]
    assert seen["rejected"] != seen["accepted"]
    assert len(seen["rejectedList"]) == 1 and "rejected" in seen["rejectedList"][0], seen["rejectedList"]
    decided = {p["proposalId"]: p for p in api(server, "GET", "/api/cdp/identity/proposals")["proposals"]}
    assert decided[seen["accepted"]]["status"] == "accepted" and decided[seen["rejected"]]["status"] == "rejected"
    pair = decided[seen["accepted"]]["profileIds"]
    assert api(server, "GET", f"/api/cdp/profiles/{pair[1]}")["id"] == api(server, "GET", f"/api/cdp/profiles/{pair[0]}")["id"]

    # Privacy: the access request made above, what the key may do; a policy saved, a key issued (shown once) and
    # revoked, retention saved and run, a suppression check.
    assert len(seen["requestRows"]) == 1 and export["requestId"] in seen["requestRows"][0], seen["requestRows"]
    assert "access" in seen["requestRows"][0] and "completed" in seen["requestRows"][0]
    assert "Completed\n1" in seen["requestCards"], seen["requestCards"]
    assert "api-key" in seen["accessText"] and "admin" in seen["accessText"], seen["accessText"]
    assert seen["policyNotice"].startswith("Policy saved: "), seen["policyNotice"]
    assert api(server, "GET", "/api/cdp/governance/policy")["principals"]["ops"]["roles"] == ["viewer"]
    assert seen["keyNotice"].startswith("Key key_") and " for ops, shown this once" in seen["keyNotice"]
    issued = seen["keyNotice"].rsplit(": ", 1)[1]
    assert issued.startswith("cdpk_"), seen["keyNotice"]
    assert len(seen["keyRows"]) == 1 and "ops" in seen["keyRows"][0] and "console test" in seen["keyRows"][0]
    assert issued not in " ".join(seen["keyRows"])  # the secret is not listed
    assert seen["revokeNotice"].startswith("Key key_") and seen["revokeNotice"].endswith(" revoked.")
    assert seen["keyRowsAfter"] == 0
    assert server.request("GET", "/api/cdp/stats", key=issued)[0] == 401  # revoked
    assert seen["retentionNotice"] == "Retention policies saved: 1.", seen["retentionNotice"]
    assert seen["runNotice"].startswith("Retention run rrun_") and "0 events purged" in seen["runNotice"]
    assert len(seen["runRows"]) == 1 and "manual" in seen["runRows"][0], seen["runRows"]
    assert api(server, "GET", "/api/cdp/retention/policies")["policies"][0]["name"] == "ancient views"
    assert seen["suppressionResult"] == "not suppressed", seen["suppressionResult"]
    assert seen["liftNotice"] == f"email {b_email} was not suppressed.", seen["liftNotice"]
    assert any(d.startswith(f"Lift the suppression of email {b_email}?") for d in seen["dialogs"]), seen["dialogs"]
