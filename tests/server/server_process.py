# Copyright 2026 The libcdp Authors.
#
# A cdp-server process for the tests in this folder: started on 127.0.0.1 with port 0 (its port is read from its
# "listening on" line), stopped with SIGTERM. Standard library only.

import http.client
import json
import os
import select
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("CDP_SERVER_BIN", str(REPO_ROOT / "build" / "examples" / "server" / "cdp-server"))
STARTUP_TIMEOUT = 30.0
LISTEN_PREFIX = "cdp-server listening on http://"
KEY_PREFIX = "cdp-server API key for this run (--api-key or CDP_API_KEY to choose one): "


class ServerProcess:
    """A running cdp-server; `port` is read from its 'listening on' line, and `generated_key` from the line before
    it when the server made up a key for the run (no --api-key, no key issued by the database), else None."""

    def __init__(self, data_dir, api_key, extra_args=(), env=None):
        args = [SERVER_BIN, "--data", str(data_dir), "--host", "127.0.0.1", "--port", "0", "--threads", "4"]
        if api_key is not None:
            args += ["--api-key", api_key]
        args += list(extra_args)
        proc_env = dict(os.environ if env is None else env)
        if env is None:
            proc_env.pop("CDP_API_KEY", None)
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr_file, env=proc_env)
        self.host = "127.0.0.1"
        self.generated_key = None
        self.startup_lines = []
        self.port = self._read_port()

    def _read_port(self):
        # Lines read from the descriptor itself (a buffered readline could hold the next line where select cannot
        # see it), up to the "listening on" line.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        fd = self.proc.stdout.fileno()
        pending = b""
        text = ""
        while time.monotonic() < deadline and not text.startswith(LISTEN_PREFIX):
            if b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                text = line.decode().strip()
                self.startup_lines.append(text)
                if text.startswith(KEY_PREFIX):
                    self.generated_key = text[len(KEY_PREFIX):]
                elif not text.startswith(("cdp-server console: ", LISTEN_PREFIX)):
                    break
                continue
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                pending += chunk
            elif self.proc.poll() is not None:
                break
        if not text.startswith(LISTEN_PREFIX):
            self.kill()
            raise RuntimeError(f"cdp-server did not start (stdout {text!r}): {self.stderr()}")
        host_port = text[len(LISTEN_PREFIX):]
        host, _, port = host_port.rpartition(":")
        assert host == "127.0.0.1"
        return int(port)

    def stderr(self):
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def stop(self, timeout=15):
        """SIGTERM, and wait: returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def raw(self, method, path, body=b"", headers=None):
        """(status, parsed JSON or None, headers) of one request with exactly these headers and bytes."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data else None), resp.headers
        finally:
            conn.close()

    def request(self, method, path, body=None, *, key, headers=None, params=None):
        """Returns (status, parsed JSON body, text for other types, or None, response headers). `body`: bytes/str
        sent as is, else JSON."""
        if params:
            path += "?" + urllib.parse.urlencode(params)
        all_headers = {}
        if key is not None:
            all_headers["Authorization"] = "Bearer " + key
        if headers:
            all_headers.update(headers)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
            if not data:
                parsed = None
            elif "json" in resp.headers.get("Content-Type", "application/json") and \
                    "ndjson" not in resp.headers.get("Content-Type", ""):
                parsed = json.loads(data)
            else:
                parsed = data.decode("utf-8", errors="replace")  # text answers (CSV, JSON lines, HTML)
            return resp.status, parsed, resp.headers
        finally:
            conn.close()
