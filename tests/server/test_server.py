# Copyright 2026 The libcdp Authors.
#
# End-to-end tests of cdp-server (examples/server): start the built binary, talk HTTP to it.
#
#   CDP_SERVER_BIN=build/examples/server/cdp-server /usr/bin/python3 -m pytest tests/server -q
#
# Standard library + pytest only.

import base64
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

import server_process
from server_process import SERVER_BIN

API_KEY = "test-key-" + uuid.uuid4().hex

# Engine defaults (cdp::Options) the server runs with.
MAX_BATCH_BYTES = 500 << 10
MAX_PROFILE_BYTES = 256 << 10


class ServerProcess(server_process.ServerProcess):
    """cdp-server with this module's API key by default."""

    def __init__(self, data_dir, api_key=API_KEY, extra_args=(), env=None):
        super().__init__(data_dir, api_key, extra_args, env)

    def request(self, method, path, body=None, *, key=API_KEY, headers=None, params=None):
        return super().request(method, path, body, key=key, headers=headers, params=params)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"cdp-server binary not found at {SERVER_BIN}; build it or set CDP_SERVER_BIN")
    srv = ServerProcess(tmp_path_factory.mktemp("cdp-data"))
    yield srv
    code = srv.stop()
    assert code == 0, srv.stderr()


def unique_email(tag="user"):
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def assert_error(body, code, field=None):
    """The one error shape: {"error": {"code", "message"[, "field"]}}."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"], body
    assert set(err) <= {"code", "message", "field"}, body
    if field is not None:
        assert err.get("field") == field, body
    else:
        assert err.get("field", "x") != "", body  # omitted when empty, never ""


def track(server, event):
    status, body, _ = server.request("POST", "/api/cdp/events", event)
    assert status == 201, body
    return body


def ms(iso):
    """Epoch milliseconds of an ISO 8601 UTC timestamp."""
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# ---- health and auth ---------------------------------------------------------------------------------------------


def test_healthz_needs_no_auth(server):
    status, body, headers = server.request("GET", "/healthz", key=None)
    assert status == 200
    assert body == {"status": "ok"}
    assert headers["Content-Type"].startswith("application/json")


AUTH_ROUTES = [
    ("GET", "/api/cdp/stats", None),
    ("POST", "/api/cdp/profiles", {"attributes": {"email": "nobody@example.com"}}),
    ("GET", "/api/cdp/profiles/some-id", None),
    ("DELETE", "/api/cdp/profiles/some-id", None),
    ("POST", "/api/cdp/profiles/search", {}),
    ("POST", "/api/cdp/events", {"type": "page_view", "email": "nobody@example.com"}),
    ("POST", "/api/cdp/events/batch", [{"type": "page_view", "email": "nobody@example.com"}]),
    ("GET", "/api/cdp/events", None),
    ("GET", "/api/cdp/no-such-route", None),
]


@pytest.mark.parametrize("method,path,body", AUTH_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {API_KEY}", "Bearer", "Bearer ", API_KEY, f"Bearer {API_KEY}x",
     f"Bearer {API_KEY[:-1]}", f"Token {API_KEY}"],
)
def test_api_routes_require_the_key(server, method, path, body, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    status, resp, resp_headers = server.request(method, path, body, key=None, headers=headers)
    assert status == 401, resp
    assert_error(resp, "unauthenticated")
    assert resp_headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_rejected_requests_write_nothing(server):
    email = unique_email("unauth")
    status, _, _ = server.request("POST", "/api/cdp/events", {"type": "page_view", "email": email}, key="nope")
    assert status == 401
    status, _, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"email": email}}, key=None)
    assert status == 401
    status, body, _ = server.request(
        "POST", "/api/cdp/profiles/search",
        {"conditions": [{"field": "externalIds.email", "operator": "=", "value": email}]})
    assert status == 200, body
    assert body["items"] == []


def test_correct_key_is_accepted_and_scheme_is_case_insensitive(server):
    for auth in (f"Bearer {API_KEY}", f"bearer {API_KEY}", f"BEARER {API_KEY}"):
        status, body, _ = server.request("GET", "/api/cdp/stats", key=None, headers={"Authorization": auth})
        assert status == 200, (auth, body)


def raw_exchange(server, request_bytes):
    """Sends bytes as they are on one connection left open, and reads one answer: (status, JSON body)."""
    import socket
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(body) < length:
            body += sock.recv(65536)
        return int(head.split(b" ")[1]), json.loads(body)


def raw_all(server, request_bytes):
    """Sends bytes on one connection and reads until the server closes it: everything it answered."""
    import socket
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(request_bytes)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data


def test_one_answer_per_connection_so_unread_bytes_are_never_a_request(server):
    # A reviewer smuggled requests through bodies the server leaves unread (a multipart body, a broken gzip
    # stream): the rest of the bytes were parsed as the next request on the kept-alive connection.
    auth = f"Authorization: Bearer {API_KEY}\r\nHost: 127.0.0.1\r\n"
    smuggled = f"GET /api/cdp/stats HTTP/1.1\r\n{auth}\r\n"
    for head in (f"POST /api/cdp/events HTTP/1.1\r\n{auth}Content-Type: multipart/form-data; boundary=zz\r\n",
                 f"POST /api/cdp/events HTTP/1.1\r\n{auth}Content-Encoding: gzip\r\n"):
        body = b"x" * 64 + smuggled.encode()
        data = raw_all(server, head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 400"), data[:300]
        assert b'"profiles"' not in data  # the stats answer never came
    # Two requests sent together: the first is answered, and the connection ends.
    data = raw_all(server, (smuggled + smuggled).encode())
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 200"), data[:300]
    assert b"Connection: close" in data


def test_bodies_are_bounded_after_decompression_and_read_after_the_key(server):
    import gzip as gz
    limit_error = "request body exceeds"
    # 8 MB of zeros compress to a few KB: refused once past the limit, not inflated into memory.
    bomb = gz.compress(b"0" * (8 << 20))
    status, body, _ = server.request("POST", "/api/cdp/events/batch", bomb,
                                     headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert status == 413 and limit_error in body["error"]["message"], body
    # A chunked body past the limit, the same.
    import socket
    chunk = b"[" + b" " * (1 << 20)
    req = (f"POST /api/cdp/events/batch HTTP/1.1\r\nAuthorization: Bearer {API_KEY}\r\nHost: 127.0.0.1\r\n"
           "Transfer-Encoding: chunked\r\n\r\n").encode() + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
    data = raw_all(server, req)
    assert data.startswith(b"HTTP/1.1 413") and limit_error.encode() in data, data[:300]
    # Without a key: 401, whatever the body.
    status, body, _ = server.request("POST", "/api/cdp/events/batch", bomb, key=None,
                                     headers={"Content-Encoding": "gzip"})
    assert status == 401, body


def test_an_id_without_its_prefix_is_a_missing_segment_not_a_missing_route(server):
    for path, says in (("/api/cdp/segments/nope", "segment nope does not exist (segment ids start with seg_)"),
                       ("/api/cdp/segments/nope/members", "segment nope does not exist (segment ids start with seg_)"),
                       ("/api/cdp/audiences/nope", "audience nope does not exist (audience ids start with aud_)")):
        status, body, _ = server.request("GET", path)
        assert status == 404 and body["error"]["message"] == says and body["error"]["code"] == "not_found", body
    status, body, _ = server.request("GET", "/api/cdp/nothing-here")
    assert status == 404 and body["error"]["message"].startswith("no route for GET"), body


def test_a_request_without_a_body_is_answered_at_once(server):
    # `curl -X POST URL` sends neither Content-Length nor Transfer-Encoding: no body (RFC 9112, 6.3). The server
    # used to wait for the connection to close, and answered 400 when its read timed out.
    status, created, _ = server.request("POST", "/api/cdp/profiles", {"externalIds": {"email": unique_email("nb")}})
    assert status == 201, created
    auth = f"Authorization: Bearer {API_KEY}\r\nHost: 127.0.0.1\r\n"
    status, body = raw_exchange(server, f"POST /api/cdp/gdpr/export/{created['id']} HTTP/1.1\r\n{auth}\r\n".encode())
    assert status == 200 and body["profileId"] == created["id"], body
    # A route that needs a body says so, at once too.
    status, body = raw_exchange(server, f"POST /api/cdp/profiles HTTP/1.1\r\n{auth}\r\n".encode())
    assert status == 400 and "malformed JSON" in body["error"]["message"], body
    # Multipart bodies are refused unread (the API takes JSON).
    status, body = raw_exchange(server, (f"POST /api/cdp/profiles HTTP/1.1\r\n{auth}Content-Type: multipart/form-data; "
                                         "boundary=x\r\nContent-Length: 0\r\n\r\n").encode())
    assert status == 400 and "multipart" in body["error"]["message"], body


def test_env_api_key(tmp_path):
    key = "env-key-" + uuid.uuid4().hex
    env = dict(os.environ, CDP_API_KEY=key)
    srv = ServerProcess(tmp_path / "data", api_key=None, env=env)
    try:
        assert srv.request("GET", "/api/cdp/stats", key=None)[0] == 401
        assert srv.request("GET", "/api/cdp/stats", key=API_KEY)[0] == 401
        assert srv.request("GET", "/api/cdp/stats", key=key)[0] == 200
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_a_long_poll_does_not_hold_up_shutdown(tmp_path):
    # SIGTERM waited for a changes?wait=30 long poll to run out (30.9 s, a trial): the poll now answers with what
    # there is as the server stops. (15 s: stop() fails on a server that takes longer.)
    srv = ServerProcess(tmp_path / "data", api_key=API_KEY)
    try:
        status, seg, _ = srv.request("POST", "/api/cdp/segments", {"name": "buyers", "rule": {"event": "purchase"}},
                                     key=API_KEY)
        assert status == 201, seg
        status, feed, _ = srv.request("GET", f"/api/cdp/segments/{seg['id']}/changes", key=API_KEY)
        answer = {}

        def poll():
            answer["reply"] = srv.request("GET", f"/api/cdp/segments/{seg['id']}/changes?wait=30&since="
                                          + feed["cursor"], key=API_KEY)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(1)  # the poll is waiting
        assert srv.stop(timeout=15) == 0, srv.stderr()
        poller.join(timeout=5)
        assert not poller.is_alive()
        status, page, _ = answer["reply"]
        assert status == 200 and page["changes"] == [] and page["cursor"] == feed["cursor"], page
    finally:
        srv.kill()


def test_a_server_given_no_key_makes_one_for_the_run(tmp_path):
    # No /api/ access without a key: given none (and with none issued by the database), a loopback server makes
    # one up, prints it and the console's link carrying it, and refuses every request without it, whatever the
    # Host or Origin.
    env = dict(os.environ)
    env.pop("CDP_API_KEY", None)
    srv = ServerProcess(tmp_path / "data", api_key=None, env=env)
    try:
        port = srv.port
        key = srv.generated_key
        assert key and key.startswith("cdp_run_") and len(key) == len("cdp_run_") + 64, srv.startup_lines
        assert f"cdp-server console: http://127.0.0.1:{port}/console/#key={key}" in srv.startup_lines
        for headers in ({}, {"Host": f"localhost:{port}"}, {"Origin": f"http://127.0.0.1:{port}"}):
            status, body, _ = srv.raw("GET", "/api/cdp/stats", None, headers)
            assert status == 401, (headers, body)
        assert srv.request("GET", "/api/cdp/stats", key=key)[0] == 200
        assert srv.request("GET", "/api/cdp/stats", key="cdp_run_" + "0" * 64)[0] == 401
        # The Segment routes take it as their write key.
        event = json.dumps({"userId": "u1", "event": "x"}).encode()
        assert srv.raw("POST", "/v1/track", event, {})[0] == 401
        basic = "Basic " + base64.b64encode((key + ":").encode()).decode()
        assert srv.raw("POST", "/v1/track", event, {"Authorization": basic})[0] == 200
        # /healthz needs no credentials.
        assert srv.raw("GET", "/healthz", None, {})[0] == 200
    finally:
        assert srv.stop() == 0, srv.stderr()
    # Another run, another key.
    again = ServerProcess(tmp_path / "data", api_key=None, env=env)
    try:
        assert again.generated_key and again.generated_key != key
        assert again.request("GET", "/api/cdp/stats", key=key)[0] == 401
    finally:
        assert again.stop() == 0, again.stderr()


def test_refuses_non_loopback_host_without_key(tmp_path):
    env = dict(os.environ)
    env.pop("CDP_API_KEY", None)
    proc = subprocess.run(
        [SERVER_BIN, "--data", str(tmp_path / "data"), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, env=env, timeout=10)
    assert proc.returncode != 0
    assert b"listening" not in proc.stdout
    assert b"API key" in proc.stderr or b"api-key" in proc.stderr
    assert not (tmp_path / "data").exists()  # refused before opening the database


def test_bad_flags_exit_nonzero(tmp_path):
    for args in (["--port", "0"],  # no --data
                 ["--data", str(tmp_path / "d"), "--port", "70000"],
                 ["--data", str(tmp_path / "d"), "--threads", "0"],
                 ["--data", str(tmp_path / "d"), "--bogus"]):
        proc = subprocess.run([SERVER_BIN] + args, capture_output=True, timeout=10)
        assert proc.returncode != 0, args
        assert proc.stderr, args


def test_second_server_on_same_directory_fails(server, tmp_path):
    data = tmp_path / "shared"
    first = ServerProcess(data)
    try:
        proc = subprocess.run([SERVER_BIN, "--data", str(data), "--port", "0", "--api-key", API_KEY],
                              capture_output=True, timeout=20)
        assert proc.returncode != 0
        assert b"failed_precondition" in proc.stderr, proc.stderr
        assert first.request("GET", "/api/cdp/stats")[0] == 200
    finally:
        assert first.stop() == 0, first.stderr()


def test_second_server_on_a_port_in_use_fails(server, tmp_path):
    # Another data directory, the same port: the second server must not share the port (SO_REUSEPORT would let the
    # kernel split connections between the two databases).
    env = dict(os.environ)
    env.pop("CDP_API_KEY", None)
    proc = subprocess.run([SERVER_BIN, "--data", str(tmp_path / "other"), "--host", "127.0.0.1",
                           "--port", str(server.port), "--api-key", API_KEY],
                          capture_output=True, env=env, timeout=20)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert b"listening" not in proc.stdout
    assert f"cannot listen on 127.0.0.1:{server.port}".encode() in proc.stderr, proc.stderr
    assert server.request("GET", "/api/cdp/stats")[0] == 200


def test_sigterm_closes_cleanly_and_data_persists(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data)
    email = unique_email("persist")
    status, created, _ = srv.request("POST", "/api/cdp/profiles", {"attributes": {"email": email}})
    assert status == 201, created
    assert srv.stop() == 0, srv.stderr()
    assert "stopped" in srv.stderr()

    again = ServerProcess(data, extra_args=["--sync"])  # the lock was released
    try:
        status, body, _ = again.request("GET", f"/api/cdp/profiles/{created['id']}")
        assert status == 200, body
        assert body["attributes"]["email"] == email
    finally:
        again.proc.send_signal(signal.SIGINT)
        assert again.proc.wait(timeout=15) == 0, again.stderr()


# ---- profiles ----------------------------------------------------------------------------------------------------


def test_profile_crud(server):
    email = unique_email("crud")
    status, created, headers = server.request(
        "POST", "/api/cdp/profiles",
        {"attributes": {"email": email, "firstName": "Ada", "country": "GB", "tags": ["vip"]}})
    assert status == 201, created
    pid = created["id"]
    assert isinstance(pid, str) and pid
    assert headers["Location"] == f"/api/cdp/profiles/{pid}"
    assert created["attributes"]["firstName"] == "Ada"
    assert created["externalIds"]["email"] == email

    status, got, _ = server.request("GET", f"/api/cdp/profiles/{pid}")
    assert status == 200
    assert got["id"] == pid and got["attributes"]["email"] == email and got["attributes"]["tags"] == ["vip"]
    assert got["createdAt"] == created["createdAt"]

    # PUT replaces the writable fields: firstName / tags not given become empty.
    status, replaced, _ = server.request(
        "PUT", f"/api/cdp/profiles/{pid}", {"attributes": {"email": email, "lastName": "Lovelace", "country": "GB"}})
    assert status == 200, replaced
    assert replaced["id"] == pid and replaced["createdAt"] == created["createdAt"]
    assert replaced["attributes"]["lastName"] == "Lovelace"
    assert "firstName" not in replaced["attributes"]
    assert not replaced["attributes"].get("tags")

    # PATCH merges: set city, delete country, keep the rest.
    status, patched, _ = server.request(
        "PATCH", f"/api/cdp/profiles/{pid}", {"attributes": {"city": "London", "country": None}})
    assert status == 200, patched
    assert patched["attributes"]["city"] == "London"
    assert "country" not in patched["attributes"]
    assert patched["attributes"]["lastName"] == "Lovelace"
    assert patched["attributes"]["email"] == email
    status, got, _ = server.request("GET", f"/api/cdp/profiles/{pid}")
    assert got["attributes"] == patched["attributes"]

    status, body, _ = server.request("DELETE", f"/api/cdp/profiles/{pid}")
    assert status == 200
    assert body["deleted"] == pid and body["request"]["type"] == "erasure"  # an erasure request (docs/privacy.md)
    for method, payload in (("GET", None), ("DELETE", None), ("PATCH", {"attributes": {"city": "x"}}),
                            ("PUT", {"attributes": {"city": "x"}})):
        status, body, _ = server.request(method, f"/api/cdp/profiles/{pid}", payload)
        assert status == 404, (method, body)
        assert_error(body, "not_found")

    # The erased email is suppressed; once that is lifted it is free again.
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"email": email}})
    assert status == 409, body
    status, body, _ = server.request("POST", "/api/cdp/gdpr/suppression/lift", {"type": "email", "value": email})
    assert status == 200 and body["unsuppressed"] is True, body
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"email": email}})
    assert status == 201, body
    assert body["id"] != pid


def test_profile_conflicts_are_409(server):
    pid = "crud-" + uuid.uuid4().hex
    email = unique_email("dup")
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"id": pid, "attributes": {"email": email}})
    assert status == 201, body
    assert body["id"] == pid
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"id": pid})
    assert status == 409
    assert_error(body, "already_exists")
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"email": email.upper()}})
    assert status == 409, body
    assert_error(body, "already_exists")


def test_profile_validation_errors_are_400_with_field(server):
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"email": "x@example.com"},
                                                                    "favouriteColour": "blue"})
    assert status == 400
    assert_error(body, "invalid_argument")
    assert body["error"].get("field")
    status, body, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"firstName": 42}})
    assert status == 400
    assert_error(body, "invalid_argument", field="attributes.firstName")


def test_profile_batch_creates_valid_items_and_reports_the_others(server):
    email = unique_email("batch")
    items = [
        {"attributes": {"firstName": "Ada", "email": email, "phone": "+1 (650) 253-0000"}},
        {"attributes": {"firstName": 42}},                      # invalid
        {"externalIds": {"email": email.upper()}},              # the first item's email
        {"id": "batch-" + uuid.uuid4().hex, "attributes": {"firstName": "Grace"}},
    ]
    status, body, _ = server.request("POST", "/api/cdp/profiles/batch", items)
    assert status == 200, body
    assert (body["accepted"], body["rejected"]) == (2, 2)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == ["ok", "invalid_argument", "already_exists", "ok"]
    assert results[1]["error"]["field"] == "attributes.firstName"
    assert results[2]["error"]["field"] == "externalIds.email"
    assert results[3]["id"] == items[3]["id"]
    status, got, _ = server.request("GET", "/api/cdp/profiles/" + results[0]["id"])
    assert status == 200, got
    assert got["externalIds"]["email"] == email
    assert got["externalIds"]["phone"] == "+16502530000"
    # Segment's shape, and bad bodies.
    status, body, _ = server.request("POST", "/api/cdp/profiles/batch", {"batch": [{"attributes": {"city": "Oslo"}}]})
    assert status == 200 and body["accepted"] == 1, body
    status, body, _ = server.request("POST", "/api/cdp/profiles/batch", {"profiles": []})
    assert status == 400
    assert_error(body, "invalid_argument")
    status, body, _ = server.request("POST", "/api/cdp/profiles/batch", [{} for _ in range(10001)])
    assert status == 400, body  # over max_batch_items: bad input
    assert_error(body, "invalid_argument")


def test_search_with_conditions_and_pagination(server):
    run = uuid.uuid4().hex
    expected = set()
    for i in range(23):
        country = "US" if i % 2 == 0 else "FR"
        status, body, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {
            "email": unique_email("search"), "country": country, "customFields": {"run": run, "n": i}}})
        assert status == 201, body
        if country == "US":
            expected.add(body["id"])
    assert len(expected) == 12

    query = {"conditions": [{"field": "attributes.customFields.run", "operator": "=", "value": run},
                            {"field": "attributes.country", "operator": "=", "value": "US"}],
             "operator": "AND", "limit": 5}
    seen = []
    pages = 0
    cursor = None
    while True:
        body_in = dict(query, cursor=cursor) if cursor else query
        status, body, _ = server.request("POST", "/api/cdp/profiles/search", body_in)
        assert status == 200, body
        assert set(body) == {"items", "nextCursor"}
        assert len(body["items"]) <= 5
        for item in body["items"]:
            assert item["attributes"]["country"] == "US"
            assert item["attributes"]["customFields"]["run"] == run
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert pages < 10
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert set(seen) == expected
    assert pages >= 3

    # Sorting, and OR groups.
    status, body, _ = server.request("POST", "/api/cdp/profiles/search", {
        "conditions": [{"field": "attributes.customFields.run", "operator": "=", "value": run},
                       {"operator": "OR", "conditions": [
                           {"field": "attributes.customFields.n", "operator": "<", "value": 3},
                           {"field": "attributes.customFields.n", "operator": ">=", "value": 21}]}],
        "sort": {"field": "attributes.customFields.n", "order": "desc"}, "limit": 50})
    assert status == 200, body
    assert [p["attributes"]["customFields"]["n"] for p in body["items"]] == [22, 21, 2, 1, 0]
    assert body["nextCursor"] is None


def test_search_errors(server):
    status, body, _ = server.request("POST", "/api/cdp/profiles/search", {
        "conditions": [{"field": "attributes.country", "operator": "~~", "value": "US"}]})
    assert status == 400
    assert_error(body, "invalid_argument")
    assert "operator" in body["error"].get("field", "")
    status, body, _ = server.request("POST", "/api/cdp/profiles/search", "{\"conditions\": [")
    assert status == 400
    assert_error(body, "invalid_argument")


# ---- events ------------------------------------------------------------------------------------------------------


def test_track_by_email_creates_a_profile(server):
    email = unique_email("track")
    result = track(server, {"type": "purchase", "email": email.upper(), "properties": {"revenue": 42}})
    assert set(result) >= {"eventId", "profileId", "sessionId", "profileCreated", "duplicate"}
    assert result["profileCreated"] is True and result["duplicate"] is False
    pid = result["profileId"]

    status, profile, _ = server.request("GET", f"/api/cdp/profiles/{pid}")
    assert status == 200, profile
    assert profile["externalIds"]["email"] == email  # normalized to lower case
    assert profile["computed"]["purchaseCount"] == 1
    assert profile["computed"]["ltv"] == 42

    again = track(server, {"type": "page_view", "email": email, "properties": {"url": "/cart"}})
    assert again["profileId"] == pid and again["profileCreated"] is False

    # Re-tracking an event id is reported as a duplicate and changes nothing.
    event = {"id": "evt-" + uuid.uuid4().hex, "type": "purchase", "email": email,
             "timestamp": "2026-01-05T10:00:00Z", "properties": {"revenue": 8}}
    first = track(server, event)
    dup = track(server, event)
    assert first["duplicate"] is False and dup["duplicate"] is True
    assert dup["eventId"] == first["eventId"] == event["id"]
    status, profile, _ = server.request("GET", f"/api/cdp/profiles/{pid}")
    assert profile["computed"]["purchaseCount"] == 2
    assert profile["computed"]["ltv"] == 50


def test_track_validation_error(server):
    status, body, _ = server.request("POST", "/api/cdp/events", {"type": "teleport", "email": unique_email()})
    assert status == 400
    assert_error(body, "invalid_argument", field="type")
    status, body, _ = server.request("POST", "/api/cdp/events", {"type": "custom", "email": unique_email()})
    assert status == 400
    assert_error(body, "invalid_argument", field="name")


def test_batch_with_one_bad_item(server):
    email = unique_email("batch")
    items = [
        {"type": "page_view", "email": email, "timestamp": "2026-02-01T10:00:00Z", "properties": {"url": "/a"}},
        {"type": "not_a_type", "email": email},
        {"type": "purchase", "email": email, "timestamp": "2026-02-01T10:05:00Z", "properties": {"revenue": 10}},
    ]
    status, body, _ = server.request("POST", "/api/cdp/events/batch", items)
    assert status == 200, body
    assert body["accepted"] == 2 and body["rejected"] == 1
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[0]["status"] == "ok" and results[2]["status"] == "ok"
    assert results[1]["status"] == "invalid_argument"
    assert results[1]["error"]["code"] == "invalid_argument"
    assert results[1]["error"].get("field", "").endswith("type")
    pid = results[0]["profileId"]
    assert results[2]["profileId"] == pid

    status, page, _ = server.request("GET", "/api/cdp/events", params={"profileId": pid})
    assert status == 200, page
    assert sorted(e["type"] for e in page["items"]) == ["page_view", "purchase"]
    assert {e["id"] for e in page["items"]} == {results[0]["eventId"], results[2]["eventId"]}

    # Segment's {"batch": [...]} shape.
    status, body, _ = server.request("POST", "/api/cdp/events/batch",
                                     {"batch": [{"type": "email_open", "profileId": pid}]})
    assert status == 200, body
    assert body["accepted"] == 1 and body["results"][0]["profileId"] == pid

    # A body that is no batch at all fails as a whole.
    status, body, _ = server.request("POST", "/api/cdp/events/batch", {"type": "page_view"})
    assert status == 400
    assert_error(body, "invalid_argument")
    status, body, _ = server.request("POST", "/api/cdp/events/batch", "[{\"type\": ")
    assert status == 400
    assert_error(body, "invalid_argument")


@pytest.fixture(scope="module")
def event_profile(server):
    """A profile with a known set of events, tracked out of order."""
    pid = "evq-" + uuid.uuid4().hex
    events = [
        {"type": "page_view", "timestamp": "2026-03-01T10:00:00Z", "source": "web", "properties": {"url": "/"}},
        {"type": "product_view", "timestamp": "2026-03-01T10:02:00Z", "source": "web",
         "properties": {"sku": "A1", "price": 30}},
        {"type": "add_to_cart", "timestamp": "2026-03-01T10:03:00Z", "source": "web", "properties": {"sku": "A1"}},
        {"type": "purchase", "timestamp": "2026-03-01T10:10:00Z", "source": "pos",
         "properties": {"revenue": 30, "plan": "pro"}},
        {"type": "custom", "name": "review", "timestamp": "2026-03-03T09:00:00Z", "source": "app",
         "properties": {"stars": 5}},
        {"type": "page_view", "timestamp": "2026-03-03T09:01:00Z", "source": "app", "properties": {"url": "/r"}},
    ]
    order = [3, 0, 5, 1, 4, 2]  # arrival order differs from event time
    for i in order:
        track(server, dict(events[i], profileId=pid))
    return pid, events


def test_event_query_filters(server, event_profile):
    pid, events = event_profile

    def query(**params):
        status, body, _ = server.request("GET", "/api/cdp/events", params=dict(params, profileId=pid))
        assert status == 200, (params, body)
        assert set(body) == {"items", "nextCursor"}
        return body

    assert len(query()["items"]) == 6
    assert all(e["profileId"] == pid for e in query()["items"])
    assert [e["timestamp"] for e in query(type="page_view")["items"]] == [
        "2026-03-01T10:00:00.000Z", "2026-03-03T09:01:00.000Z"]
    assert {e["type"] for e in query(source="web")["items"]} == {"page_view", "product_view", "add_to_cart"}
    custom = query(name="review")["items"]
    assert len(custom) == 1 and custom[0]["properties"]["stars"] == 5
    # since (inclusive) / until (exclusive), as ISO 8601 and as epoch milliseconds.
    since_iso = query(since="2026-03-01T10:03:00Z", until="2026-03-03T09:01:00Z")["items"]
    assert [e["type"] for e in since_iso] == ["add_to_cart", "purchase", "custom"]
    since_ms = query(since=str(ms("2026-03-01T10:03:00Z")), until=str(ms("2026-03-03T09:01:00Z")))["items"]
    assert [e["id"] for e in since_ms] == [e["id"] for e in since_iso]
    where = json.dumps([{"field": "properties.sku", "operator": "=", "value": "A1"}])
    assert [e["type"] for e in query(where=where)["items"]] == ["product_view", "add_to_cart"]
    where = json.dumps({"operator": "OR", "conditions": [
        {"field": "properties.revenue", "operator": ">", "value": 20},
        {"field": "properties.stars", "operator": ">=", "value": 4}]})
    assert [e["type"] for e in query(where=where)["items"]] == ["purchase", "custom"]

    # Pagination through all of them, 4 at a time.
    ids, cursor, pages = [], None, 0
    while True:
        body = query(limit="4", **({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= 4
        ids += [e["id"] for e in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
        assert pages < 5
    assert pages == 2 and len(ids) == 6 and len(set(ids)) == 6

    # Without profileId: events of every profile, still filterable.
    status, body, _ = server.request("GET", "/api/cdp/events", params={"name": "review", "source": "app"})
    assert status == 200
    assert pid in {e["profileId"] for e in body["items"]}


@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"),
    ({"limit": "-3"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "2.5"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "99999999999999999999999"}, "limit"),
    ({"where": "[{\"field\": "}, "where"),
    ({"colour": "red"}, "colour"),
])
def test_event_query_bad_params(server, params, field):
    for path in ("/api/cdp/events", "/api/cdp/profiles/whoever/timeline"):
        status, body, _ = server.request("GET", path, params=params)
        assert status == 400, (path, body)
        assert_error(body, "invalid_argument", field=field)


def test_event_query_library_errors(server):
    status, body, _ = server.request("GET", "/api/cdp/events", params={"since": "yesterday"})
    assert status == 400
    assert_error(body, "invalid_argument")
    status, body, _ = server.request("GET", "/api/cdp/events", params={"order": "sideways"})
    assert status == 400
    assert_error(body, "invalid_argument")


def test_timeline_order(server, event_profile):
    pid, events = event_profile
    times = sorted(e["timestamp"] for e in events)
    for route in ("timeline", "events"):
        status, body, _ = server.request("GET", f"/api/cdp/profiles/{pid}/{route}")
        assert status == 200, body
        got = [e["timestamp"] for e in body["items"]]
        assert got == [t.replace("Z", ".000Z") for t in times]
        status, body, _ = server.request("GET", f"/api/cdp/profiles/{pid}/{route}", params={"order": "desc"})
        assert status == 200, body
        assert [e["timestamp"] for e in body["items"]] == list(reversed(got))
    status, body, _ = server.request("GET", f"/api/cdp/profiles/{pid}/timeline",
                                     params={"order": "desc", "limit": "2", "type": "page_view"})
    assert status == 200
    assert [e["timestamp"] for e in body["items"]] == ["2026-03-03T09:01:00.000Z", "2026-03-01T10:00:00.000Z"]

    status, body, _ = server.request("GET", "/api/cdp/profiles/no-such-profile/timeline")
    assert status == 404
    assert_error(body, "not_found")


def test_sessions(server, event_profile):
    pid, _ = event_profile
    status, body, _ = server.request("GET", f"/api/cdp/profiles/{pid}/sessions")
    assert status == 200, body
    assert set(body) == {"items"}
    sessions = body["items"]
    # 2026-03-01 10:00..10:10 and 2026-03-03 09:00..09:01: two sessions, oldest first.
    assert [s["eventCount"] for s in sessions] == [4, 2]
    assert sessions[0]["start"] < sessions[1]["start"]
    assert sessions[0]["start"].startswith("2026-03-01T10:00:00")
    assert sessions[0]["end"].startswith("2026-03-01T10:10:00")
    assert sessions[0]["durationSeconds"] == 600

    status, body, _ = server.request("GET", "/api/cdp/profiles/no-such-profile/sessions")
    assert status == 404
    assert_error(body, "not_found")


def test_concurrent_clients(server):
    """Many clients tracking for one new identifier at once: one profile, every event counted once."""
    email = unique_email("concurrent")
    threads, per_thread = 8, 25
    results, errors = [], []

    def worker(t):
        try:
            for i in range(per_thread):
                results.append(track(server, {
                    "type": "page_view", "email": email,
                    "timestamp": f"2026-04-01T10:{t:02d}:{i:02d}Z", "properties": {"url": f"/{t}/{i}"}}))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert not errors, errors
    assert len(results) == threads * per_thread
    assert len({r["profileId"] for r in results}) == 1
    assert sum(r["profileCreated"] for r in results) == 1
    assert len({r["eventId"] for r in results}) == threads * per_thread
    status, profile, _ = server.request("GET", f"/api/cdp/profiles/{results[0]['profileId']}")
    assert status == 200
    assert profile["computed"]["eventCount"] == threads * per_thread


def test_stats(server):
    status, before, _ = server.request("GET", "/api/cdp/stats")
    assert status == 200, before
    assert isinstance(before["formatVersion"], int) and before["formatVersion"] >= 1
    track(server, {"type": "page_view", "email": unique_email("stats")})
    status, after, _ = server.request("GET", "/api/cdp/stats")
    assert after["profiles"] == before["profiles"] + 1
    assert after["events"] == before["events"] + 1


# ---- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/cdp/profiles"),
    ("PUT", "/api/cdp/profiles/anyone"),
    ("PATCH", "/api/cdp/profiles/anyone"),
    ("POST", "/api/cdp/events"),
])
@pytest.mark.parametrize("payload", ["{not json", "", "[1, 2", "{\"a\": 1} trailing", "\"unterminated"])
def test_malformed_json_is_400(server, method, path, payload):
    status, body, headers = server.request(method, path, payload)
    assert status == 400, body
    assert_error(body, "invalid_argument")
    assert headers["Content-Type"].startswith("application/json")


def test_an_encoded_slash_in_the_path_is_refused_not_routed_elsewhere(server):
    created = server.request("POST", "/api/cdp/profiles", {"attributes": {"email": unique_email("slash")}})[1]
    for path in (f"/api/cdp/profiles/{created['id']}%2Fevents", f"/api/cdp/profiles/{created['id']}%2fsessions",
                 f"/api/cdp%2Fprofiles%2F{created['id']}"):
        for method in ("GET", "DELETE"):
            status, body, _ = server.request(method, path)
            assert status == 400, (method, path, body)
            assert_error(body, "invalid_argument", "path")
    assert server.request("GET", f"/api/cdp/profiles/{created['id']}")[0] == 200  # not deleted
    # Encoded characters elsewhere, and %2F in the query string, are fine.
    status, body, _ = server.request("GET", f"/api/cdp/profiles/{created['id']}/events?where=%5B%5D&cursor=%2F")
    assert status in (200, 400) and (status == 200 or body["error"].get("field") == "cursor"), body


def test_an_unsupported_content_encoding_is_400_and_stores_nothing(server):
    email = unique_email("enc")
    event = json.dumps({"type": "page_view", "email": email}).encode()
    for encoding in ("foo", "zstd", "GZIP", "x-gzip"):
        status, body, _ = server.request("POST", "/api/cdp/events", event, headers={"Content-Encoding": encoding})
        assert status == 400, (encoding, body)
        assert_error(body, "invalid_argument", "Content-Encoding")
    basic = "Basic " + base64.b64encode((API_KEY + ":").encode()).decode()
    status, body, _ = server.raw("POST", "/v1/track", json.dumps({"userId": "enc-" + email, "event": "E"}).encode(),
                                 {"Authorization": basic, "Content-Encoding": "foo"})
    assert status == 400, body
    assert_error(body, "invalid_argument", "Content-Encoding")
    status, found, _ = server.request("POST", "/api/cdp/profiles/search",
                                      {"conditions": [{"field": "externalIds.email", "operator": "=", "value": email}]})
    assert status == 200 and found["items"] == [], found
    # identity is a name for none.
    status, body, _ = server.request("POST", "/api/cdp/events", event, headers={"Content-Encoding": "identity"})
    assert status == 201, body
    # br is decoded by Debian's cpp-httplib: not refused by name (this body is no brotli stream, so the decoder
    # refuses it).
    status, body, _ = server.request("POST", "/api/cdp/events", event, headers={"Content-Encoding": "br"})
    assert status == 400 and body["error"].get("field") != "Content-Encoding", body


def test_a_number_out_of_range_is_400_naming_its_field(server):
    status, body, _ = server.request(
        "POST", "/api/cdp/events",
        '{"type":"purchase","email":"big@example.com","properties":{"revenue":99999999999999999999999}}')
    assert status == 400, body
    assert_error(body, "invalid_argument", "properties.revenue")


def test_too_deep_json_is_400(server):
    deep = "[" * 200 + "]" * 200
    status, body, _ = server.request("POST", "/api/cdp/events", deep)
    assert status == 400
    assert_error(body, "invalid_argument")


def nested(levels):
    """A JSON value nested `levels` deep: an object holding arrays down to 1."""
    value = 1
    for _ in range(levels - 1):
        value = [value]
    return {"x": value}


def test_an_item_too_deep_is_refused_alone_in_every_batch_route(server):
    # Each item is held to the 64 levels on its own, as a single call is (an item's customFields sit 2 levels
    # below it, a property 1): the too-deep item is refused naming its path, the others are stored.
    ok_id = "deep-ok-" + uuid.uuid4().hex[:8]
    status, body, _ = server.request("POST", "/api/cdp/profiles/batch", [
        {"id": ok_id},
        {"attributes": {"customFields": nested(62)}},  # 64 levels: accepted, as POST /api/cdp/profiles accepts it
        {"attributes": {"customFields": nested(63)}},  # 65
    ])
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["ok", "ok", "invalid_argument"], body
    assert body["results"][2]["error"]["field"].startswith("attributes.customFields.x"), body
    assert server.request("GET", f"/api/cdp/profiles/{ok_id}")[0] == 200

    email = unique_email("deep")
    for shape in ("array", "object"):
        items = [{"type": "page_view", "email": email, "properties": nested(63)},   # 64 levels
                 {"type": "page_view", "email": email, "properties": nested(64)},   # 65
                 {"type": "page_view", "email": email, "properties": nested(100)}]  # far too deep, still alone
        status, body, _ = server.request("POST", "/api/cdp/events/batch",
                                         items if shape == "array" else {"batch": items})
        assert status == 200, (shape, body)
        assert [r["status"] for r in body["results"]] == ["ok", "invalid_argument", "invalid_argument"], body
        assert body["results"][1]["error"]["field"].startswith("properties.x"), body

    status, body, _ = server.request("POST", "/api/cdp/identity/identify/batch", [
        {"identifiers": {"email": unique_email("deep-id")}},
        {"identifiers": {"email": unique_email("deep-id")}, "traits": {"customFields": nested(100)}},
    ])
    assert status == 200, body
    assert [r["status"] for r in body["results"]] == ["ok", "invalid_argument"], body

    # A body deeper than twice the limit (plus the batch's own levels) is refused whole, naming the limit.
    status, body, _ = server.request("POST", "/api/cdp/events/batch",
                                     [{"type": "page_view", "email": email, "properties": nested(200)}])
    assert status == 400, body
    assert_error(body, "invalid_argument")
    assert "130 levels" in body["error"]["message"], body


def test_a_request_the_server_cannot_read_is_400_not_404(server):
    for data in [b"GARBAGE\r\n\r\n",
                 b"GET /api/cdp/events HTTP/2.0\r\nHost: x\r\n\r\n",
                 b"FOO /api/cdp/events HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"]:
        status, body = raw_exchange(server, data)
        assert status == 400, (data[:40], body)
        assert_error(body, "invalid_argument")
    # A write without a body to a path with no handler is still a 404 (httplib's 400 there is not the client's).
    status, body = raw_exchange(server, b"POST /api/cdp/nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                  + API_KEY.encode() + b"\r\n\r\n")
    assert status == 404, body
    assert_error(body, "not_found")


def test_unknown_route_and_wrong_method(server):
    status, body, _ = server.request("GET", "/api/cdp/nothing-here")
    assert status == 404
    assert_error(body, "not_found")
    status, body, _ = server.request("GET", "/not-api", key=None)
    assert status == 404
    assert_error(body, "not_found")
    status, body, headers = server.request("DELETE", "/api/cdp/stats")
    assert status == 405
    assert_error(body, "invalid_argument")
    assert headers["Allow"] == "GET"
    status, body, headers = server.request("GET", "/api/cdp/events/batch")
    assert status == 405
    assert headers["Allow"] == "POST"
    status, body, headers = server.request("POST", "/api/cdp/profiles/someone")
    assert status == 405
    assert set(headers["Allow"].split(", ")) == {"GET", "PUT", "PATCH", "DELETE"}
    # Wrong methods need the key too.
    status, body, _ = server.request("DELETE", "/api/cdp/stats", key="wrong")
    assert status == 401


def test_unknown_and_repeated_query_parameters_are_400_on_every_route(server):
    # A misspelt filter must not be ignored: ?limt=2 answered a full page, ?limit=2&limit=3 two items (a trial).
    for path, bad in (("/api/cdp/stats", "foo"), ("/api/cdp/identity/stats", "foo"), ("/api/cdp/segments", "foo"),
                      ("/api/cdp/gdpr/requests", "limt"), ("/api/cdp/identity/proposals", "limit"),
                      ("/api/cdp/governance/access", "who"), ("/api/cdp/events", "foo"),
                      ("/api/cdp/analytics/overview", "foo")):
        status, body, _ = server.request("GET", path, key=API_KEY, params={bad: "1"})
        assert status == 400, (path, status, body)
        assert body["error"]["field"] == bad, (path, body)
    status, body, _ = server.request("GET", "/api/cdp/gdpr/requests?limit=2&limit=3", key=API_KEY)
    assert status == 400 and body["error"]["field"] == "limit", body
    assert "more than once" in body["error"]["message"]
    for path in ("/api/cdp/audit?limit=1&limit=2", "/api/cdp/analytics/overview?now=1&now=2",
                 "/api/cdp/retention/runs?limit=1&limit=2", "/api/cdp/events?limit=1&limit=2"):
        status, body, _ = server.request("GET", path, key=API_KEY)
        assert status == 400 and body["error"]["field"] in ("limit", "now"), (path, body)
    # The parameters a route takes still work.
    status, body, _ = server.request("GET", "/api/cdp/gdpr/requests", key=API_KEY, params={"limit": "2"})
    assert status == 200, body
    status, body, _ = server.request("GET", "/api/cdp/identity/proposals", key=API_KEY, params={"status": "pending"})
    assert status == 200, body
    # The key is checked first.
    status, _, _ = server.request("GET", "/api/cdp/stats", key="wrong", params={"foo": "1"})
    assert status == 401


def test_a_malformed_profile_id_is_400_on_every_method(server):
    # GET answered 404 "does not exist", DELETE 400, an events query by it 200 with no items (a trial).
    for method, path in (("GET", "/api/cdp/profiles/bad%20id"), ("GET", "/api/cdp/profiles/bad%20id/timeline"),
                         ("GET", "/api/cdp/profiles/bad%20id/sessions"), ("DELETE", "/api/cdp/profiles/bad%20id"),
                         ("GET", "/api/cdp/events?profileId=bad%20id"), ("GET", "/api/cdp/profiles/" + "x" * 129)):
        status, body, _ = server.request(method, path, key=API_KEY)
        assert status == 400, (method, path, status, body)
        assert body["error"]["field"] == "profileId", body
    status, body, _ = server.request("GET", "/api/cdp/profiles/well-formed-but-absent", key=API_KEY)
    assert status == 404, body


def test_bodyless_requests_to_unknown_routes_and_methods_are_404_and_405(server):
    # curl -X POST without -d sends no Content-Length: cpp-httplib answered 400 "malformed HTTP request" before
    # routing such a request to a path or method it has no handler for (a newcomer trial).
    auth = f"Authorization: Bearer {API_KEY}\r\n".encode()
    for method, path, status in (("POST", "/api/cdp/stats", 405), ("PUT", "/api/cdp/stats", 405),
                                 ("PATCH", "/api/cdp/stats", 405), ("POST", "/api/cdp/nope", 404),
                                 ("POST", "/v1/nope", 404)):
        got, body = raw_exchange(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode() + auth + b"\r\n")
        assert got == status, (method, path, got, body)
        assert body["error"]["code"] == ("not_found" if status == 404 else "invalid_argument"), body
    # The Segment routes are POST only: another method is 405 with Allow, as on /api/.
    for method in ("GET", "PUT"):
        status, body, headers = server.raw(method, "/v1/track", body=b"{}" if method == "PUT" else None)
        assert status == 405, (method, body)
        assert headers["Allow"] == "POST"
    # A body-less POST to a route that takes one is still that route's answer.
    got, body = raw_exchange(server, b"POST /api/cdp/profiles/search HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
    assert got == 200, body


def test_get_profiles_lists_every_profile_a_page_at_a_time(server):
    for i in range(3):
        status, _, _ = server.request("POST", "/api/cdp/profiles", {
            "attributes": {"firstName": f"List{i}", "customFields": {"listRank": 1_000_000_000 + i}}})
        assert status == 201
    status, everyone, _ = server.request("POST", "/api/cdp/profiles/search", {"limit": 1000})
    assert status == 200 and len(everyone["items"]) >= 3
    ids, cursor = [], None
    while True:
        path = "/api/cdp/profiles?limit=2" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, page, _ = server.request("GET", path)
        assert status == 200 and len(page["items"]) <= 2, page
        ids += [p["id"] for p in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert ids == [p["id"] for p in everyone["items"]]  # by id, as the search without conditions
    status, top, _ = server.request("GET", "/api/cdp/profiles?limit=1&sort=attributes.customFields.listRank&order=desc")
    assert status == 200 and top["items"][0]["attributes"]["firstName"] == "List2", top
    for bad, field in (("limit=0", "limit"), ("limit=x", "limit"), ("order=sideways", "order"),
                       ("cursor=nonsense", "cursor"), ("limt=5", "limt")):
        status, body, _ = server.request("GET", "/api/cdp/profiles?" + bad)
        assert status == 400, (bad, body)
        assert_error(body, "invalid_argument", field)  # the parameter's own name
    # Any positive limit is clamped to max_page_size (1000), as on GET /api/cdp/events.
    status, page, _ = server.request("GET", "/api/cdp/profiles?limit=2147483648")
    assert status == 200 and 3 <= len(page["items"]) <= 1000, page


def test_oversized_batch_is_400_and_an_oversized_body_413(server):
    email = unique_email("big")
    item = {"type": "page_view", "email": email, "properties": {"pad": "x" * 1000}}
    # Over the library's max_batch_bytes, under the server's payload limit: bad input (InvalidArgument).
    just_over = json.dumps([item] * (MAX_BATCH_BYTES // 1000 + 10))
    assert MAX_BATCH_BYTES < len(just_over) < MAX_BATCH_BYTES + (64 << 10)
    status, body, _ = server.request("POST", "/api/cdp/events/batch", just_over)
    assert status == 400, body
    assert_error(body, "invalid_argument")
    assert "over the limit of" in body["error"]["message"], body
    # Far over: the server refuses the body itself, with the same shape.
    huge = json.dumps([item] * 3000)
    status, body, headers = server.request("POST", "/api/cdp/events/batch", huge)
    assert status == 413, body
    assert_error(body, "resource_exhausted")
    assert headers["Content-Type"].startswith("application/json")
    # Nothing of either was stored, and the server still serves.
    status, body, _ = server.request("POST", "/api/cdp/profiles/search", {
        "conditions": [{"field": "externalIds.email", "operator": "=", "value": email}]})
    assert status == 200 and body["items"] == []


def test_a_large_json_body_sent_as_a_form_is_read_as_json(server):
    # `curl -d` labels its body x-www-form-urlencoded. cpp-httplib parsed such bodies itself and capped them at
    # 8 KiB; the server reads every body itself now, as JSON whatever the Content-Type says.
    body = json.dumps([{"type": "page_view", "email": unique_email("form"), "properties": {"pad": "x" * 9000}}])
    status, resp, _ = server.request("POST", "/api/cdp/events/batch", body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and resp["accepted"] == 1, resp


def test_oversized_event_is_400_naming_its_largest_member(server):
    event = {"type": "page_view", "email": unique_email("bigevent"), "properties": {"pad": "x" * (40 << 10)}}
    status, body, _ = server.request("POST", "/api/cdp/events", event)
    assert status == 400, body
    assert_error(body, "invalid_argument", field="properties")


def test_identity_endpoints(server):
    email = unique_email("ident")
    status, anon, _ = server.request("POST", "/api/cdp/events", {"type": "page_view", "anonymousId": "anon-" + email})
    assert status in (200, 201), anon
    status, known, _ = server.request("POST", "/api/cdp/profiles", {"externalIds": {"email": email}})
    assert status == 201, known
    status, login, _ = server.request(
        "POST", "/api/cdp/events", {"type": "page_view", "anonymousId": "anon-" + email, "email": email})
    assert login["mergedProfiles"] == [anon["profileId"]]
    status, why, _ = server.request("GET", "/api/cdp/profiles/" + anon["profileId"] + "/identity")
    assert status == 200 and why["profileId"] == known["id"]
    assert why["merges"][0]["mergeId"] == login["mergeId"]

    status, other, _ = server.request("POST", "/api/cdp/profiles", {"attributes": {"firstName": "Zed"}})
    status, merged, _ = server.request(
        "POST", "/api/cdp/profiles/merge", {"profileIds": [known["id"], other["id"]], "reason": "same person"})
    assert status == 200, merged
    assert merged["profileId"] == known["id"] and merged["merged"] == [other["id"]]
    status, body, _ = server.request("POST", "/api/cdp/profiles/merge", {"profileIds": [known["id"], 3]})
    assert status == 400
    assert_error(body, "invalid_argument", "profileIds[1]")
    status, body, _ = server.request("POST", "/api/cdp/profiles/merge", {"profileIds": [known["id"], "nope"]})
    assert status == 404

    status, rules, _ = server.request("GET", "/api/cdp/identity/rules")
    assert status == 200 and rules["hub"]["threshold"] == 10
    status, body, _ = server.request("PUT", "/api/cdp/identity/rules", {"identifiers": []})
    assert status == 400
    assert_error(body, "invalid_argument", "identifiers")
    status, dry, _ = server.request("POST", "/api/cdp/identity/rules/dry-run", rules)
    assert status == 200 and dry["wouldMerge"] == [] and dry["identifiersScanned"] >= 1
    status, same, _ = server.request("PUT", "/api/cdp/identity/rules", rules)
    assert status == 200 and same == rules
    status, applied, _ = server.request("POST", "/api/cdp/identity/rules/apply", rules)
    assert status == 200 and applied["rules"] == rules and applied["merged"] == [] and applied["unlinked"] == []
    status, body, _ = server.request("POST", "/api/cdp/identity/rules/apply", {"identifiers": []})
    assert status == 400
    assert_error(body, "invalid_argument", "identifiers")
    status, undone, _ = server.request(
        "POST", "/api/cdp/profiles/" + known["id"] + "/unmerge", {"mergeId": merged["mergeId"]})
    assert status == 200 and undone["restored"] == [other["id"]], undone
    status, body, _ = server.request("POST", "/api/cdp/profiles/" + known["id"] + "/unmerge", {"mergeId": merged["mergeId"]})
    assert status == 409
    status, body, _ = server.request("POST", "/api/cdp/profiles/" + known["id"] + "/unmerge", {})
    assert status == 400
    assert_error(body, "invalid_argument", "mergeId")
    status, stats, _ = server.request("GET", "/api/cdp/identity/stats")
    assert status == 200 and stats["merges"] >= 2 and stats["unmerges"] >= 1


def test_fuzzy_matching_endpoints(server):
    status, config, _ = server.request("GET", "/api/cdp/identity/matching")
    assert status == 200 and config["autoMergeAbove"] is None
    status, body, _ = server.request("PUT", "/api/cdp/identity/matching", {"linkage": config["linkage"], "proposeAbove": 7})
    assert status == 400
    assert_error(body, "invalid_argument", "proposeAbove")
    status, run, _ = server.request("POST", "/api/cdp/identity/duplicates")
    assert status == 200 and "candidatePairs" in run
    # Matching on write: switched on, the queue drained on demand, and back off.
    status, body, _ = server.request("PUT", "/api/cdp/identity/matching", {**config, "onWrite": True})
    assert status == 200 and body["onWrite"] is True
    status, body, _ = server.request("POST", "/api/cdp/identity/matching/pending")
    assert status == 200 and set(body) == {"matched", "proposed", "updated", "autoMerged"}
    status, stats, _ = server.request("GET", "/api/cdp/identity/stats")
    assert status == 200 and stats["matching"]["onWrite"] is True and stats["matching"]["queued"] == 0
    status, body, _ = server.request("PUT", "/api/cdp/identity/matching", config)
    assert status == 200 and body["onWrite"] is False
    status, listed, _ = server.request("GET", "/api/cdp/identity/proposals?status=pending")
    assert status == 200 and isinstance(listed["proposals"], list)
    status, body, _ = server.request("GET", "/api/cdp/identity/proposals?status=maybe")
    assert status == 400
    status, body, _ = server.request("POST", "/api/cdp/identity/proposals/prp_none/accept")
    assert status == 404


def test_fuzzy_proposals_accepted_and_rejected_over_rest(tmp_path):
    """Proposals found over REST on a fresh database, one accepted (a merge), one rejected (never proposed again)."""
    srv = ServerProcess(tmp_path / "cdp-data")
    try:
        people = [("john", "smith", "2000", "19800101"), ("jon", "smith", "2000", "19800101"),
                  ("mary", "jones", "3000", "19700505"), ("marie", "jones", "3000", "19700505"),
                  ("peter", "brown", "4000", "19600606"), ("anna", "white", "5000", "19500707"),
                  ("ann", "white", "5000", "19500707"), ("paul", "green", "6000", "19900909")]
        ids = []
        for first, last, postal, dob in people:
            status, body, _ = srv.request("POST", "/api/cdp/profiles", {"attributes": {
                "firstName": first, "lastName": last, "postalCode": postal, "customFields": {"birthDate": dob}}})
            assert status == 201, body
            ids.append(body["id"])
        status, config, _ = srv.request("GET", "/api/cdp/identity/matching")
        assert status == 200
        status, body, _ = srv.request("PUT", "/api/cdp/identity/matching", {**config, "proposeAbove": 0.5})
        assert status == 200, body
        status, run, _ = srv.request("POST", "/api/cdp/identity/duplicates")
        assert status == 200 and run["profiles"] == 8 and run["proposed"] >= 2, run
        status, listed, _ = srv.request("GET", "/api/cdp/identity/proposals?status=pending")
        assert status == 200 and len(listed["proposals"]) == run["proposed"], listed
        by_pair = {frozenset(p["profileIds"]): p for p in listed["proposals"]}
        john = by_pair[frozenset((ids[0], ids[1]))]
        mary = by_pair[frozenset((ids[2], ids[3]))]

        status, accepted, _ = srv.request("POST", f"/api/cdp/identity/proposals/{john['proposalId']}/accept")
        assert status == 200 and accepted["status"] == "accepted" and accepted["mergeId"].startswith("mrg_"), accepted
        status, a, _ = srv.request("GET", f"/api/cdp/profiles/{ids[0]}")
        status_b, b, _ = srv.request("GET", f"/api/cdp/profiles/{ids[1]}")
        assert status == 200 and status_b == 200 and a["id"] == b["id"], (a, b)  # one answers for both
        status, explained, _ = srv.request("GET", f"/api/cdp/profiles/{a['id']}/identity")
        merge = [m for m in explained["merges"] if m["mergeId"] == accepted["mergeId"]]
        assert status == 200 and merge and merge[0]["evidence"] == {
            "call": "identity.acceptProposal", "proposalId": john["proposalId"]}, explained

        status, rejected, _ = srv.request("POST", f"/api/cdp/identity/proposals/{mary['proposalId']}/reject")
        assert status == 200 and rejected["status"] == "rejected", rejected
        status, body, _ = srv.request("POST", f"/api/cdp/identity/proposals/{mary['proposalId']}/accept")
        assert status == 409, body
        status, m2, _ = srv.request("GET", f"/api/cdp/profiles/{ids[3]}")
        assert status == 200 and m2["id"] == ids[3]  # not merged
        status, again, _ = srv.request("POST", "/api/cdp/identity/duplicates")
        assert status == 200, again
        status, listed, _ = srv.request("GET", "/api/cdp/identity/proposals?status=pending")
        assert frozenset((ids[2], ids[3])) not in {frozenset(p["profileIds"]) for p in listed["proposals"]}, listed
        status, done, _ = srv.request("GET", "/api/cdp/identity/proposals?status=rejected")
        assert status == 200 and [p["proposalId"] for p in done["proposals"]] == [mary["proposalId"]], done
    finally:
        assert srv.stop() == 0, srv.stderr()


def test_segment_endpoints(server):
    run = "seg-" + str(time.time_ns())
    for i in range(6):
        status, body, _ = server.request("POST", "/api/cdp/events", {
            "type": "purchase", "customerId": f"{run}-{i}", "properties": {"revenue": i, "run": run}})
        assert status in (200, 201), body
    rule = {"event": "purchase", "where": [{"field": "properties.run", "operator": "=", "value": run},
                                           {"field": "properties.revenue", "operator": ">=", "value": 2}]}
    status, body, _ = server.request("POST", "/api/cdp/segments/estimate", {"rule": rule})
    assert status == 200 and body == {"size": 4}, body
    status, seg, _ = server.request("POST", "/api/cdp/segments", {"name": "big spenders " + run, "rule": rule})
    assert status == 201 and seg["size"] == 4, seg
    path = "/api/cdp/segments/" + seg["id"]
    status, body, _ = server.request("GET", path + "/size")
    assert status == 200 and body["size"] == 4
    status, body, _ = server.request("GET", path + "/members?limit=3")
    assert status == 200 and len(body["items"]) == 3 and body["nextCursor"], body
    status, rest, _ = server.request("GET", path + "/members?limit=3&cursor=" + body["nextCursor"])
    assert status == 200 and len(rest["items"]) == 1 and rest["nextCursor"] is None, rest
    status, listed, _ = server.request("GET", "/api/cdp/segments")
    assert status == 200 and seg["id"] in [s["id"] for s in listed["segments"]]
    status, body, _ = server.request("PUT", path, {"name": "renamed", "rule": {"segment": "seg_missing"}})
    assert status == 400
    assert_error(body, "invalid_argument", "rule")
    status, body, _ = server.request("POST", "/api/cdp/segments", {"name": "x", "rule": {"event": "purchase",
                                                                                         "count": {"~": 1}}})
    assert status == 400
    assert body["error"]["field"].startswith("rule.count"), body
    status, body, _ = server.request("GET", path + "/members?limit=zero")
    assert status == 400
    assert_error(body, "invalid_argument", "limit")
    # The change feed: the four members entered at creation; a new purchase adds one, before the POST returns.
    status, feed, _ = server.request("GET", path + "/changes")
    assert status == 200 and len(feed["changes"]) == 4 and not feed["more"], feed
    assert {c["cause"]["kind"] for c in feed["changes"]} == {"created"}
    created_at = feed["changes"][0]["time"]
    status, page, _ = server.request("GET", path + "/changes?limit=3")
    assert status == 200 and len(page["changes"]) == 3 and page["more"], page
    status, body, _ = server.request("POST", "/api/cdp/events", {
        "type": "purchase", "customerId": f"{run}-new", "properties": {"revenue": 50, "run": run}})
    status, newer, _ = server.request("GET", path + "/changes?since=" + feed["cursor"])
    assert status == 200 and [c["change"] for c in newer["changes"]] == ["entered"], newer
    assert newer["changes"][0]["profileId"] == body["profileId"]
    status, profile, _ = server.request("GET", "/api/cdp/profiles/" + body["profileId"])
    assert seg["id"] in profile["segments"], profile
    # A long poll with nothing new returns when `wait` runs out, with the same cursor.
    status, idle, _ = server.request("GET", path + "/changes?wait=1&since=" + newer["cursor"])
    assert status == 200 and idle["changes"] == [] and idle["cursor"] == newer["cursor"], idle
    status, body, _ = server.request("GET", path + "/changes?wait=99")
    assert status == 400
    assert_error(body, "invalid_argument", "wait")
    status, body, _ = server.request("GET", path + "/changes?since=not-a-cursor")
    assert status == 400
    assert_error(body, "invalid_argument", "since")
    # Membership as of a past time.
    status, then, _ = server.request("GET", path + "/members?asOf=" + created_at)
    assert status == 200 and then["count"] == 4 and len(then["profileIds"]) == 4, then
    status, now, _ = server.request("GET", path + "/members?asOf=2099-01-01T00:00:00Z")
    assert status == 200 and now["count"] == 5, now
    # Overlap, export (streamed) and a manual list.
    status, body, _ = server.request("POST", "/api/cdp/segments/overlap", {"segmentIds": [seg["id"], seg["id"]]})
    assert status == 400
    status, manual, _ = server.request("POST", "/api/cdp/segments", {"name": "list " + run, "type": "manual"})
    assert status == 201 and manual["size"] == 0, manual
    status, added, _ = server.request("POST", f"/api/cdp/segments/{manual['id']}/members",
                                      {"items": [{"type": "customerId", "value": f"{run}-0"},
                                                 {"type": "customerId", "value": f"{run}-3"}]})
    assert status == 200 and added["added"] == 2, added
    status, overlap, _ = server.request("POST", "/api/cdp/segments/overlap", {"segmentIds": [seg["id"], manual["id"]]})
    assert status == 200 and overlap["matrix"][0][1]["intersection"] == 1, overlap
    status, removed, _ = server.request("POST", f"/api/cdp/segments/{manual['id']}/members/remove",
                                        {"items": [{"type": "customerId", "value": f"{run}-0"}]})
    assert status == 200 and removed["removed"] == 1, removed
    status, text, headers = server.request("POST", path + "/export", {"format": "csv",
                                                                      "fields": ["id", "externalIds.customerId"]})
    assert status == 200, text
    assert headers.get("Content-Type", "").startswith("text/csv"), headers
    lines = text.strip().split("\r\n") if isinstance(text, str) else text.decode().strip().split("\r\n")
    assert lines[0] == "id,externalIds.customerId" and len(lines) == 1 + 5, lines
    status, body, _ = server.request("POST", path + "/export", {"format": "xml"})
    assert status == 400
    assert_error(body, "invalid_argument", "format")
    status, body, _ = server.request("DELETE", path)
    assert status == 200 and body == {"deleted": seg["id"]}
    status, body, _ = server.request("GET", path)
    assert status == 404


def test_audience_endpoints(server):
    run = "aud-" + str(time.time_ns())
    ids = []
    for i in range(4):
        status, body, _ = server.request("POST", "/api/cdp/profiles", {
            "externalIds": {"email": f"{run}-{i}@example.com"},
            "attributes": {"customFields": {"run": run}}, "consent": {"email": i != 1}})
        assert status == 201, body
        ids.append(body["id"])
    status, seg, _ = server.request("POST", "/api/cdp/segments", {
        "name": run, "rule": {"field": "attributes.customFields.run", "operator": "=", "value": run}})
    assert status == 201 and seg["size"] == 4, seg
    status, lst, _ = server.request("POST", "/api/cdp/audiences/suppression-lists", {"name": "unsubscribed " + run})
    assert status == 201, lst
    list_path = "/api/cdp/audiences/suppression-lists/" + lst["id"]
    status, added, _ = server.request("POST", list_path + "/items",
                                      {"items": [{"type": "email", "value": f"{run}-2@example.com"}]})
    assert status == 200 and added["added"] == 1, added
    status, aud, _ = server.request("POST", "/api/cdp/audiences", {
        "name": "newsletter " + run, "segments": {"operator": "OR", "ids": [seg["id"]]},
        "suppressionLists": [lst["id"]], "channel": "email"})
    assert status == 201 and aud["size"] == 2, aud
    path = "/api/cdp/audiences/" + aud["id"]
    status, listed, _ = server.request("GET", "/api/cdp/audiences")
    assert status == 200 and aud["id"] in [a["id"] for a in listed["audiences"]]
    status, size, _ = server.request("GET", path + "/size")
    assert status == 200 and size["size"] == 2
    status, members, _ = server.request("GET", path + "/members?limit=1")
    assert status == 200 and len(members["items"]) == 1 and members["nextCursor"], members
    status, overlap, _ = server.request("GET", path + "/overlap")
    assert status == 200 and overlap["suppressed"] == 1 and overlap["withoutConsent"] == 1, overlap
    status, text, headers = server.request("POST", path + "/export", {"format": "jsonl", "fields": ["id"]})
    assert status == 200 and headers.get("Content-Type", "").startswith("application/x-ndjson"), headers
    assert {json.loads(line)["id"] for line in text.splitlines()} == {ids[0], ids[3]}
    status, body, _ = server.request("PUT", path, {"name": "x", "segments": {"ids": ["seg_missing"]}})
    assert status == 400
    assert_error(body, "invalid_argument", "segments.ids")
    status, body, _ = server.request("DELETE", list_path)
    assert status == 409, body
    status, body, _ = server.request("DELETE", path)
    assert status == 200
    status, body, _ = server.request("GET", path)
    assert status == 404
    status, body, _ = server.request("DELETE", list_path)
    assert status == 200


def test_rfm_endpoints(server):
    status, config, _ = server.request("GET", "/api/cdp/segments/rfm")
    assert status == 200 and config["event"] == "purchase", config
    status, body, _ = server.request("PUT", "/api/cdp/segments/rfm", {"window": "730d"})
    assert status == 200 and body["window"] == "730d" and "lastRun" in body, body
    status, run, _ = server.request("POST", "/api/cdp/segments/rfm/recompute")
    assert status == 200 and run["scored"] >= 0 and "at" in run, run
    status, body, _ = server.request("PUT", "/api/cdp/segments/rfm", {"window": 5})
    assert status == 400
    assert_error(body, "invalid_argument", "window")
