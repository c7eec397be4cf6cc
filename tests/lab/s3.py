# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's S3 store: moto's S3 server with SigV4 authentication enforced, like MinIO.

The server runs in a child process. moto keeps its backends and its auth switch
(``INITIAL_NO_AUTH_ACTION_COUNT``) in module globals, so a child keeps them away from any
test that uses ``moto.mock_aws`` in the same interpreter, and gives S3 its own core.
The parent talks to the child over stdin/stdout, one JSON line per command.

Fault injection (``S3Server.faults``) is a WSGI middleware in front of moto:

- ``slow``: sleep ``delay`` seconds, then answer normally;
- ``error``: answer ``status`` with an S3 XML error body;
- ``down``: the listener is closed (connection refused) and requests already on a
  connection are cut; ``clear()`` re-opens the same port. With ``paths`` only the matching
  requests are cut and the listener stays open.

``set_link(bytes_per_second)`` puts the server behind a shared link of that bandwidth: every GET
response is held until its bytes have "crossed" the link, one transfer after another, as on a real
network to MinIO. Benchmarks use it; it costs the client no CPU.

``paths`` restricts a fault to requests whose object key (or, for a listing, the ``prefix``
parameter) matches: a glob when it contains ``*?[``, a substring otherwise.

The server has one configured region (``LAB_REGION`` unless given) and refuses a request signed
for another one, as MinIO with a configured region does; moto alone accepts any region.
"""

from __future__ import annotations

import fnmatch
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

FAULT_MODES = ("ok", "down", "slow", "error")
LAB_USER = "longhorn-lab"
# The region the lab's store is configured with; requests signed for another region are refused.
LAB_REGION = "us-east-1"
_START_TIMEOUT = 120.0
_COMMAND_TIMEOUT = 60.0
# S3 error code sent with each fault status (MinIO/AWS wording).
_ERROR_CODES = {
    400: ("InvalidRequest", "Invalid Request"),
    403: ("AccessDenied", "Access Denied."),
    404: ("NoSuchKey", "The specified key does not exist."),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error, please try again."),
    501: ("NotImplemented", "A header you provided implies functionality that is not implemented."),
    502: ("BadGateway", "Bad Gateway."),
    503: ("ServiceUnavailable", "The service is unavailable. Please retry."),
    504: ("GatewayTimeout", "Gateway Timeout."),
}
_HTTP_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
                 500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
                 503: "Service Unavailable", 504: "Gateway Timeout"}


class S3LabError(RuntimeError):
    """The lab S3 server could not start or did not answer a command."""


class S3Faults:
    """Fault switch of one S3Server; every call is applied by the server before it returns."""

    def __init__(self, server):
        self._server = server
        self._lock = threading.Lock()
        self._current = {"mode": "ok"}

    def set(self, mode: str, *, delay: float = 0.0, status: int = 503, paths: str | None = None,
            code: str | None = None, count: int | None = None) -> None:
        """Turn a fault on. ``count`` limits it to that many matching requests (not for a global down)."""
        if mode not in FAULT_MODES:
            raise ValueError("unknown S3 fault mode %r, expected one of %s" % (mode, ", ".join(FAULT_MODES)))
        if mode == "slow" and delay <= 0:
            raise ValueError("a slow fault needs a positive delay")
        if mode == "error" and not 400 <= int(status) <= 599:
            raise ValueError("an error fault needs an HTTP error status, got %r" % status)
        if mode == "down" and paths is None and count is not None:
            raise ValueError("a global down fault cannot be counted; give paths or clear() it")
        fault = {"mode": mode, "delay": float(delay), "status": int(status), "paths": paths, "code": code,
                 "count": count}
        with self._lock:
            self._server.command("fault", **fault)
            self._current = fault

    def clear(self) -> None:
        with self._lock:
            self._server.command("fault", mode="ok")
            self._current = {"mode": "ok"}

    @property
    def current(self) -> dict:
        with self._lock:
            return dict(self._current)


class S3Server:
    """moto S3 with auth enforced, one bucket, and an IAM user whose key the lab hands out."""

    def __init__(self, bucket="longhorn-backups", region=LAB_REGION, object_lock=False, host="127.0.0.1", port=0):
        self.bucket = bucket
        self.region = region
        self.object_lock = object_lock
        self.host = host
        self.port = port
        self.endpoint = None
        self.access_key = None
        self.secret_key = None
        self.faults = S3Faults(self)
        self._proc = None
        self._replies = queue.Queue()
        self._command_lock = threading.Lock()
        self._session = None
        self._session_lock = threading.Lock()

    def __repr__(self):
        return "S3Server(endpoint=%r, bucket=%r, region=%r)" % (self.endpoint, self.bucket, self.region)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        config = {"bucket": self.bucket, "region": self.region, "object_lock": self.object_lock,
                  "host": self.host, "port": self.port}
        env = dict(os.environ)
        # moto enforces SigV4 and IAM only once this many unauthenticated calls are used up (moto.settings).
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        # -P: do not put tests/lab on sys.path, where lab modules could shadow real packages.
        isolate = ["-P"] if sys.version_info >= (3, 11) else []
        args = [sys.executable] + isolate + [os.path.abspath(__file__), "--serve", json.dumps(config)]
        self._replies = queue.Queue()
        self._proc = subprocess.Popen(  # pylint: disable=consider-using-with
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        threading.Thread(target=self._read_replies, args=(self._proc,), daemon=True,
                         name="lab-s3-replies").start()
        ready = self._reply(_START_TIMEOUT)
        if "error" in ready:
            self.stop()
            raise S3LabError("lab S3 server did not start: %s" % ready["error"])
        self.port = ready["port"]
        self.endpoint = "http://%s:%d" % (self.host, self.port)
        self.access_key = ready["access_key"]
        self.secret_key = ready["secret_key"]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write(b'{"cmd": "stop"}\n')
                proc.stdin.flush()
                proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=15)
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def command(self, cmd: str, **args) -> dict:
        """Send one command to the server process and wait for its answer."""
        with self._command_lock:
            if not self.running:
                raise S3LabError("lab S3 server is not running")
            line = json.dumps(dict(args, cmd=cmd)) + "\n"
            self._proc.stdin.write(line.encode())
            self._proc.stdin.flush()
            reply = self._reply(_COMMAND_TIMEOUT)
        if "error" in reply:
            raise S3LabError("lab S3 command %s failed: %s" % (cmd, reply["error"]))
        return reply

    def set_link(self, bytes_per_second: float) -> None:
        """Share one link of this bandwidth among all GET responses (0 removes the limit)."""
        if bytes_per_second < 0:
            raise ValueError("a link needs a bandwidth of 0 (unlimited) or more, got %r" % bytes_per_second)
        self.command("link", bytes_per_second=float(bytes_per_second))

    def client(self, access_key=None, secret_key=None, endpoint=None, **kw):
        """A boto3 S3 client, path-style, with the lab credentials unless others are given."""
        import boto3  # pylint: disable=import-outside-toplevel
        from botocore.config import Config  # pylint: disable=import-outside-toplevel

        config = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3, "mode": "standard"},
                        connect_timeout=5, read_timeout=60,
                        request_checksum_calculation="when_required", response_checksum_validation="when_required")
        if kw.get("config") is not None:
            config = config.merge(kw.pop("config"))
        kw.pop("config", None)
        with self._session_lock:
            # One session: loading botocore's models per client costs ~0.3 s; sessions are not thread-safe.
            if self._session is None:
                self._session = boto3.session.Session()
            return self._session.client(
                "s3",
                endpoint_url=endpoint or self.endpoint,
                region_name=kw.pop("region_name", self.region),
                aws_access_key_id=self.access_key if access_key is None else access_key,
                aws_secret_access_key=self.secret_key if secret_key is None else secret_key,
                config=config,
                **kw)

    def backup_target_url(self, path: str = "") -> str:
        """The Longhorn backup target URL of this bucket, e.g. ``s3://longhorn-backups@us-east-1/`` (ref §3.1)."""
        path = path.strip("/")
        return "s3://%s@%s/%s" % (self.bucket, self.region, path + "/" if path else "")

    def _read_replies(self, proc):
        for line in proc.stdout:
            line = line.strip()
            if line:
                self._replies.put(json.loads(line))
        self._replies.put({"error": "server process exited with %s" % proc.wait()})

    def _reply(self, timeout):
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            return {"error": "no answer within %.0f s" % timeout}


# --- everything below runs in the server process ---------------------------------------------


def _match(pattern, target):
    if pattern is None:
        return True
    if any(char in pattern for char in "*?["):
        return fnmatch.fnmatchcase(target, pattern)
    return pattern in target


class _FaultState:
    def __init__(self):
        self._lock = threading.Lock()
        self._fault = {"mode": "ok"}

    def set(self, fault):
        with self._lock:
            self._fault = dict(fault)

    @property
    def mode(self):
        with self._lock:
            return self._fault["mode"]

    def take(self, target):
        """The fault for a request on ``target``, consuming one use of a counted fault."""
        with self._lock:
            fault = self._fault
            if fault["mode"] == "ok" or not _match(fault.get("paths"), target):
                return None
            if fault.get("count") is not None:
                if fault["count"] <= 0:
                    return None
                fault["count"] -= 1
            return dict(fault)


def _error_response(start_response, status, code, message, resource):
    default_code, default_message = _ERROR_CODES.get(status, ("InternalError", "We encountered an internal error."))
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<Resource>%s</Resource><RequestId>lab-s3-fault</RequestId></Error>'
            % (escape(code or default_code), escape(message or default_message), escape(resource))).encode()
    start_response("%d %s" % (status, _HTTP_REASONS.get(status, "Error")),
                   [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _signed_region(environ):
    """The region of a SigV4 ``Authorization`` header's credential scope (``Credential=AK/date/region/s3/aws4_request``)."""
    header = environ.get("HTTP_AUTHORIZATION", "").replace(" ", "")
    if not header.startswith("AWS4-HMAC-SHA256"):
        return None
    for field in header[len("AWS4-HMAC-SHA256"):].split(","):
        name, _sep, value = field.partition("=")
        if name == "Credential":
            scope = value.split("/")
            return scope[2] if len(scope) == 5 else None
    return None


class _FaultMiddleware:
    """Applies lab faults and MinIO-like answers moto does not give, then hands over to moto."""

    def __init__(self, app, state, link=None, region=LAB_REGION):
        self.app = app
        self.state = state
        self.link = link or _Link()
        self.region = region

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if path.startswith("/moto-api"):
            # MinIO has no such API; its reset endpoint would wipe the lab state.
            return _error_response(start_response, 403, None, None, path)
        if "HTTP_AUTHORIZATION" not in environ:
            if "X-Amz-Signature" in query or "Signature" in query:
                # moto cannot check presigned URLs with auth enforced.
                return _error_response(start_response, 501, None, "presigned URLs are not supported by the lab", path)
            # Anonymous access to a private bucket (moto itself fails with a 500 here).
            return _error_response(start_response, 403, None, None, path)
        parts = unquote(path).lstrip("/").split("/", 1)
        key = parts[1] if len(parts) > 1 else ""
        fault = self.state.take(key or (query.get("prefix") or [""])[0])
        if fault is not None:
            if fault["mode"] == "slow":
                time.sleep(fault["delay"])
            elif fault["mode"] == "error":
                return _error_response(start_response, fault["status"], fault.get("code"), None, path)
            elif fault["mode"] == "down":
                connection = environ.get("werkzeug.socket")
                if connection is not None:
                    try:
                        connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                # werkzeug treats this as a dropped connection and sends nothing.
                raise ConnectionResetError("lab S3 fault: down")
        signed_region = _signed_region(environ)
        if signed_region is not None and signed_region != self.region:
            # MinIO with a configured region (minio/minio cmd/signature-v4-parser.go parseCredentialHeader,
            # isValidRegion) refuses a credential scope for another region; cmd/api-response.go
            # writeErrorResponse words it with the configured region. moto ignores the region.
            return _error_response(start_response, 400, "AuthorizationHeaderMalformed",
                                   "The authorization header is malformed; the region is wrong; expecting '%s'." % self.region,
                                   path)
        body = self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") == "GET" and self.link.limited:
            body = [b"".join(body)]
            self.link.cross(len(body[0]))
        return body


class _Link:
    """A shared link: transfers queue for it, each taking size / bandwidth seconds."""

    def __init__(self):
        self._lock = threading.Lock()
        self.bytes_per_second = 0.0
        self._free_at = 0.0

    @property
    def limited(self):
        return self.bytes_per_second > 0

    def cross(self, size):
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at)
            self._free_at = start + size / self.bytes_per_second
            done = self._free_at
        time.sleep(max(0.0, done - time.monotonic()))


class _Listener:
    """The HTTP listener; it can be closed and re-opened on the same port."""

    def __init__(self, app, host, port):
        self.app = app
        self.host = host
        self.port = port
        self._server = None
        self._thread = None

    def open(self):
        from werkzeug.serving import make_server  # pylint: disable=import-outside-toplevel
        from moto.moto_server.werkzeug_app import MotoRequestHandler  # pylint: disable=import-outside-toplevel

        class QuietHandler(MotoRequestHandler):
            def log_request(self, code="-", size="-"):
                pass

        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=QuietHandler)
                break
            except OSError:
                # The old socket may linger for a moment after a down fault.
                if not self.port or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name="lab-s3-listener")
        self._thread.start()

    def close(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server = None

    @property
    def is_open(self):
        return self._server is not None


def _create_lab_user():
    """Create the IAM user and key directly in moto's backend: with auth on, no API call works before."""
    from moto.core import DEFAULT_ACCOUNT_ID  # pylint: disable=import-outside-toplevel
    from moto.iam.models import iam_backends  # pylint: disable=import-outside-toplevel

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
    iam.create_user("us-east-1", LAB_USER)
    # The rights Longhorn's docs ask for (ref §3.3 Lock files), plus bucket administration for the lab.
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}
    iam.put_user_policy(LAB_USER, "lab-s3-full-access", json.dumps(policy))
    key = iam.create_access_key(LAB_USER)
    return key.access_key_id, key.secret_access_key


def _serve(config):
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    # Keep stray prints of moto or werkzeug off the protocol channel.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def reply(**payload):
        proto.write(json.dumps(payload) + "\n")

    try:
        from moto import settings  # pylint: disable=import-outside-toplevel
        from moto.moto_server.werkzeug_app import (  # pylint: disable=import-outside-toplevel
            DomainDispatcherApplication, create_backend_app)
        import boto3  # pylint: disable=import-outside-toplevel
        from botocore.config import Config  # pylint: disable=import-outside-toplevel

        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        access_key, secret_key = _create_lab_user()
        state = _FaultState()
        link = _Link()
        listener = _Listener(_FaultMiddleware(DomainDispatcherApplication(create_backend_app), state, link,
                                              region=config["region"]),
                             config["host"], config["port"])
        listener.open()
        s3 = boto3.session.Session().client(
            "s3", endpoint_url="http://%s:%d" % (config["host"], listener.port), region_name=config["region"],
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}))
        create = {"Bucket": config["bucket"]}
        if config["region"] != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": config["region"]}
        if config["object_lock"]:
            # Object lock implies versioning (moto turns it on with the lock).
            create["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**create)
    except Exception as exc:  # pylint: disable=broad-except
        reply(error="%s: %s" % (type(exc).__name__, exc))
        return 1
    reply(port=listener.port, access_key=access_key, secret_key=secret_key)

    for line in sys.stdin:
        try:
            command = json.loads(line)
            if command["cmd"] == "stop":
                break
            if command["cmd"] == "link":
                link.bytes_per_second = float(command["bytes_per_second"])
                reply(ok=True, port=listener.port)
                continue
            if command["cmd"] != "fault":
                raise ValueError("unknown command %r" % command["cmd"])
            fault = {key: command.get(key) for key in ("mode", "delay", "status", "paths", "code", "count")}
            if fault["mode"] == "down" and fault["paths"] is None:
                state.set({"mode": "down"})
                listener.close()
            else:
                state.set(fault)
                if not listener.is_open:
                    listener.open()
            reply(ok=True, port=listener.port)
        except Exception as exc:  # pylint: disable=broad-except
            reply(error="%s: %s" % (type(exc).__name__, exc))
    listener.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        sys.exit(_serve(json.loads(sys.argv[2])))
    sys.exit("usage: s3.py --serve CONFIG_JSON (started by tests.lab.s3.S3Server)")
