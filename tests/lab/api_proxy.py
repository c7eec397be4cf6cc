# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fault-injecting HTTPS reverse proxy in front of the real API server.

The real kube-apiserver cannot inject faults, so the kubeconfig the collection gets points
here.  Each request is checked against ``Faults.api_fault_for``: a match is answered with a
``metav1.Status`` (or held, then dropped); everything else is relayed
byte for byte over HTTP/1.1.  Relaying bytes rather than re-issuing requests keeps headers,
bodies and chunked framing unchanged, so watch events stream through as they come and
upgraded connections (``kubectl exec``: websocket or SPDY) are just two byte pumps.

One upstream connection is paired with each client connection; it runs on its own asyncio
loop in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import urllib.parse

LOG = logging.getLogger("lab.api_proxy")

_CHUNK = 65536
_MAX_HEAD = 1024 * 1024
_MAX_BODY = 16 * 1024 * 1024
# The Status reason and message an injected fault answers with, per HTTP code.
FAULT_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource has expired"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    502: ("InternalError", "the server responded with the status code 502 but did not return more information"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
}
_PHRASES = {101: "Switching Protocols", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 410: "Gone", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def fault_exempt(path):
    """Health, version, discovery and OpenAPI are never faulted: clients discover before every call."""
    parts = path.strip("/").split("/")
    if parts[0] in ("version", "healthz", "readyz", "livez", "openapi", ".well-known"):
        return True
    return (parts[0] == "api" and len(parts) <= 2) or (parts[0] == "apis" and len(parts) <= 3)


def status_response(code, message=None, reason=None):
    """A whole HTTP response carrying a ``metav1.Status`` failure, as the API server words it."""
    known_reason, known_message = FAULT_REASONS.get(code, ("InternalError", "injected fault"))
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message or known_message, "reason": reason or known_reason, "code": code}
    headers = [("Content-Type", "application/json")]
    if code == 429:
        body["details"] = {"retryAfterSeconds": 1}
        headers.append(("Retry-After", "1"))
    payload = json.dumps(body, separators=(",", ":")).encode()     # compact, as the API server writes it
    headers.append(("Content-Length", str(len(payload))))
    head = "HTTP/1.1 %d %s\r\n" % (code, _PHRASES.get(code, "Error"))
    head += "".join("%s: %s\r\n" % header for header in headers) + "\r\n"
    return head.encode("latin-1") + payload


def _parse_head(raw):
    """(start-line words, headers with lower-case names; repeated headers joined by commas)."""
    lines = raw.decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _colon, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
    return start, headers


def _tokens(value):
    return {token.strip().lower() for token in (value or "").split(",")}


class _BadMessage(Exception):
    pass


class _Peer:
    """One side's streams with our own read buffer, so bytes read ahead (while watching for a
    client's disconnect, or right after a 101) are never lost."""

    def __init__(self, reader, writer):
        self.reader, self.writer, self.buf = reader, writer, bytearray()

    async def fill(self):
        data = await self.reader.read(_CHUNK)
        self.buf += data
        return data

    async def read_until(self, separator, limit=_MAX_HEAD):
        while True:
            end = self.buf.find(separator)
            if end >= 0:
                end += len(separator)
                data = bytes(self.buf[:end])
                del self.buf[:end]
                return data
            if len(self.buf) > limit:
                raise _BadMessage("line or head too long")
            if not await self.fill():
                raise EOFError(bytes(self.buf))

    async def read_some(self, limit=_CHUNK):
        if not self.buf and not await self.fill():
            return b""
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    def close(self, abort=False):
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()


async def _copy_exact(src, sink, size):
    while size > 0:
        data = await src.read_some(min(size, _CHUNK))
        if not data:
            raise EOFError("message body cut short")
        size -= len(data)
        await sink(data)


async def _copy_body(src, sink, headers, until_close=False):
    """Pass one message body to ``sink`` with its framing unchanged, piece by piece as it arrives."""
    if "chunked" in _tokens(headers.get("transfer-encoding")):
        while True:
            line = await src.read_until(b"\r\n")
            await sink(line)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise _BadMessage("bad chunk size %r" % line) from exc
            if size == 0:
                while (trailer := await src.read_until(b"\r\n")) != b"\r\n":
                    await sink(trailer)
                await sink(trailer)
                return
            await _copy_exact(src, sink, size + 2)      # the data and its CRLF
    elif "content-length" in headers:
        await _copy_exact(src, sink, int(headers["content-length"]))
    elif until_close:
        while data := await src.read_some():
            await sink(data)


async def _pump(src, dst):
    try:
        if src.buf:
            await dst.send(bytes(src.buf))
            src.buf.clear()
        while data := await src.reader.read(_CHUNK):
            await dst.send(data)
    except (OSError, ssl.SSLError):
        pass


class ApiProxy:
    """``ApiProxy(upstream_url, upstream_ca_file, cert_file, key_file, faults).start()``; ``url`` is
    where clients connect; ``requests`` lists ``(method, path_with_query, status)`` as answered
    (status 0: dropped by a timeout fault).  Bearer tokens pass through; client certificates cannot."""

    def __init__(self, upstream_url, upstream_ca_file, cert_file, key_file, faults, port=0, on_request=None):
        split = urllib.parse.urlsplit(upstream_url)
        self.upstream_host, self.upstream_port = split.hostname, split.port or 443
        self.faults = faults
        self.port = port
        self.url = None
        self.requests = []
        # on_request(method, target, status, headers): the lab's audit log of its clients' requests.
        self._on_request = on_request
        self._lock = threading.Lock()
        self._upstream_tls = ssl.create_default_context(cafile=upstream_ca_file)
        self._upstream_tls.set_alpn_protocols(["http/1.1"])
        self._server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_tls.load_cert_chain(cert_file, key_file)
        # Offering only http/1.1 keeps Go (kubectl) and Python clients off HTTP/2.
        self._server_tls.set_alpn_protocols(["http/1.1"])
        self._loop = None
        self._thread = None
        self._server = None
        self._tasks = set()
        self._ready = threading.Event()
        self._error = None

    # ---- lifecycle --------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="lab-api-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            error = self._error or RuntimeError("the lab API proxy did not start")
            self.stop()
            raise error
        return self

    def _run(self):
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve_client, "127.0.0.1", self.port, ssl=self._server_tls, limit=_CHUNK))
        except Exception as exc:  # pylint: disable=broad-except
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self):
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self):
        """Close the listener and every relayed connection (watches and exec sessions included)."""
        loop, thread = self._loop, self._thread
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("lab API proxy: shutdown")
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        self._thread = self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _record(self, method, target, status, headers=None, body=b""):
        with self._lock:
            self.requests.append((method, target, status))
        if self._on_request is not None:
            try:
                self._on_request(method, target, status, headers or {}, body)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("lab API proxy: on_request")

    # ---- one client connection ------------------------------------------------------
    async def _serve_client(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        client, upstream = _Peer(reader, writer), None
        try:
            while True:
                try:
                    head = await client.read_until(b"\r\n\r\n")
                except EOFError:
                    return      # the client closed between requests
                start, headers = _parse_head(head)
                if len(start) != 3:
                    raise _BadMessage("bad request line %r" % head[:80])
                method, target, version = start
                # Request bodies are small; holding one lets a request be resent on a fresh
                # upstream connection when the idle one turns out to be closed.
                request = bytearray(head)

                async def collect(data, request=request):
                    if len(request) > _MAX_BODY:
                        raise _BadMessage("request body too large")
                    request.extend(data)
                await _copy_body(client, collect, headers)
                path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
                fault = None if fault_exempt(path) else self.faults.api_fault_for(method, path)
                if fault is not None and fault.timeout and fault.timeout > 0:
                    await asyncio.sleep(fault.timeout)
                    self._record(method, target, 0, headers)
                    client.close(abort=True)        # no response at all, as a hung server that gives up
                    return
                if fault is not None:
                    await client.send(status_response(fault.status))
                    self._record(method, target, fault.status, headers)
                    continue
                try:
                    upstream, response_head = await self._exchange(upstream, bytes(request), client)
                except (OSError, ssl.SSLError, EOFError, _BadMessage) as exc:
                    await client.send(status_response(502, "lab API proxy: upstream failed: %s: %s" % (type(exc).__name__, exc)))
                    self._record(method, target, 502, headers)
                    return
                (_version, status, *_reason), response_headers = _parse_head(response_head)
                status = int(status)
                # Recorded before the client hears the answer: a listener acting on this request
                # (a test killing the client, say) acts before the client can take its next step.
                self._record(method, target, status, headers, bytes(request[len(head):]))
                await client.send(response_head)
                if status == 101:
                    # An upgraded connection (exec, attach, port-forward): bytes both ways until one side closes.
                    pumps = [asyncio.ensure_future(_pump(client, upstream)), asyncio.ensure_future(_pump(upstream, client))]
                    try:
                        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for pump in pumps:
                            pump.cancel()
                        await asyncio.gather(*pumps, return_exceptions=True)
                    return
                no_body = method == "HEAD" or status in (204, 304)
                framed = "content-length" in response_headers or "chunked" in _tokens(response_headers.get("transfer-encoding"))
                if not no_body and not await self._relay_response(client, upstream, response_headers, until_close=not framed):
                    return
                if not framed and not no_body:
                    return      # the body ended with the upstream connection
                if "close" in _tokens(response_headers.get("connection")) or "close" in _tokens(headers.get("connection")) \
                        or version != "HTTP/1.1":
                    return
        except _BadMessage as exc:
            LOG.debug("lab API proxy: %s", exc)
            client.close(abort=True)
        except (OSError, ssl.SSLError, EOFError):
            client.close(abort=True)
        except Exception:  # pylint: disable=broad-except
            LOG.exception("lab API proxy: connection failed")
            client.close(abort=True)
        finally:
            self._tasks.discard(task)
            for peer in (client, upstream):
                if peer is not None:
                    try:
                        peer.close()
                    except Exception:  # pylint: disable=broad-except
                        pass

    async def _connect(self):
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port, ssl=self._upstream_tls,
                                                       server_hostname=self.upstream_host, limit=_CHUNK)
        return _Peer(reader, writer)

    async def _exchange(self, upstream, request, client):
        """Send ``request`` upstream, relay interim 1xx heads, return the upstream and the final (or 101) head."""
        reused = upstream is not None and not upstream.writer.is_closing() and not upstream.reader.at_eof()
        if not reused:
            if upstream is not None:
                upstream.close()
            upstream = await self._connect()
        try:
            await upstream.send(request)
            head = await upstream.read_until(b"\r\n\r\n")
        except (OSError, EOFError):
            if not reused:
                raise
            # The idle connection had been closed by the API server: resend on a fresh one.
            upstream.close()
            upstream = await self._connect()
            await upstream.send(request)
            head = await upstream.read_until(b"\r\n\r\n")
        while head[9:10] == b"1" and head[9:12] != b"101":
            await client.send(head)     # 100 Continue and the like precede the real answer
            head = await upstream.read_until(b"\r\n\r\n")
        return upstream, head

    async def _relay_response(self, client, upstream, headers, until_close):
        """Relay a response body; a client that goes away ends it (and the upstream request with it).
        Returns False when the connection pair is done."""
        async def client_gone():
            while await client.fill():      # bytes a pipelining client sends early stay in its buffer
                pass
        watcher = asyncio.ensure_future(client_gone())
        relay = asyncio.ensure_future(_copy_body(upstream, client.send, headers, until_close))
        try:
            await asyncio.wait([watcher, relay], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Wait for the loser to finish cancelling: the client's reader must be free for the next request.
            watcher.cancel()
            relay.cancel()
            await asyncio.gather(watcher, relay, return_exceptions=True)
        if relay.cancelled():
            return False
        if relay.exception() is not None:
            raise relay.exception()
        return True
