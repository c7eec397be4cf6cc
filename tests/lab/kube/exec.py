# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``pods/exec`` over a websocket, as the API server and kubelet serve it.

Protocol (k8s.io/apiserver wsstream and kubelet cri/streaming/remotecommand):
every frame starts with a channel byte, 0 stdin, 1 stdout, 2 stderr, 3 error,
4 resize; ``v5.channel.k8s.io`` adds 255, "close this channel".  Right after the
upgrade an empty frame goes out on the lowest writable channel.  At the end the
error channel carries, for v4/v5, a JSON ``metav1.Status`` (Success, or Failure
with reason NonZeroExitCode and the exit code as the ``ExitCode`` cause); older
protocols carry only an error message, and nothing on success.  The base64
variants send text frames whose channel is an ASCII digit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os

from aiohttp import WSMsgType, web

from .. import pods
from .. import api_errors as errors

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
# Server preference does not matter: aiohttp takes the client's first supported protocol.
PROTOCOLS = (V5, V4, V4_BASE64, V1, V1_BASE64)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_CHUNK = 32 * 1024


def _flag(query, name):
    # The API server parses these with strconv.ParseBool; the Python client sends "True"/"False".
    return query.get(name, "").lower() in ("1", "t", "true")


def _status_response(error):
    return web.json_response(error.status(), status=error.code)


def exit_status(argv, returncode):
    """The Status the kubelet writes when the command ends (remotecommand ServeExec)."""
    if returncode == 0:
        return {"metadata": {}, "status": "Success"}
    code = returncode if returncode > 0 else 128 - returncode
    return {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [%s], exit code %d" % (" ".join(argv), code),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message):
    text = "Internal error occurred: error executing command in container: %s" % message
    return {"metadata": {}, "status": "Failure", "message": text, "reason": "InternalError",
            "details": {"causes": [{"message": "error executing command in container: %s" % message}]}, "code": 500}


class _Channels:
    """Frames channel data for the negotiated protocol."""

    def __init__(self, ws, protocol):
        self.ws = ws
        self.protocol = protocol or ""
        self.base64 = self.protocol in (V4_BASE64, V1_BASE64)

    async def send(self, channel, data):
        if self.ws.closed:
            return
        if self.base64:
            await self.ws.send_str(str(channel) + base64.b64encode(data).decode("ascii"))
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    def decode(self, message):
        """``(channel, payload)`` of a client frame, or None."""
        if message.type == WSMsgType.TEXT:
            text = message.data
            if not text:
                return None
            if self.base64:
                return int(text[0]), base64.b64decode(text[1:])
            # The Python client writes str data as text frames: chr(channel) + data.
            return ord(text[0]), text[1:].encode("utf-8")
        if message.type == WSMsgType.BINARY and message.data:
            return message.data[0], message.data[1:]
        return None

    async def send_status(self, status):
        if self.protocol in (V4, V4_BASE64, V5):
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode("utf-8"))
        elif status.get("status") != "Success":
            await self.send(ERROR, status.get("message", "").encode("utf-8"))


async def _pump(stream, channels, channel):
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            return
        if channel is not None:
            await channels.send(channel, chunk)


async def _feed_stdin(ws, channels, process):
    """Client frames to the process: stdin data, v5 close of stdin; resize is ignored (no tty)."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            break
        decoded = channels.decode(message)
        if decoded is None:
            continue
        channel, payload = decoded
        if channel == STDIN and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(payload)
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
        elif channel == CLOSE and payload[:1] == bytes([STDIN]) and process.stdin is not None:
            process.stdin.close()
    return True


def _unsupported_protocols(request):
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    requested = [p.strip() for p in header.split(",") if p.strip()]
    if requested and not set(requested) & set(PROTOCOLS):
        return requested
    return None


async def handle_exec(request, ctx, namespace, pod_name):
    """``GET|POST /api/v1/namespaces/{namespace}/pods/{name}/exec``."""
    pod = ctx.store.try_get("pods", namespace, pod_name)
    if pod is None:
        return _status_response(errors.NotFound("pods", pod_name))
    query = request.query
    command = query.getall("command", [])
    want_stdin, want_stdout, want_stderr, tty = (_flag(query, n) for n in ("stdin", "stdout", "stderr", "tty"))
    if not (want_stdin or want_stdout or want_stderr):
        return _status_response(errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr"))
    if tty and want_stderr:
        return _status_response(errors.BadRequest("stdout, stderr must not both be set when tty is true"))
    if request.headers.get("Upgrade", "").lower() != "websocket":
        # Real servers also speak SPDY; the lab serves the websocket protocols only.
        return _status_response(errors.BadRequest("Upgrade request required"))
    requested = _unsupported_protocols(request)
    if requested:
        return _status_response(errors.BadRequest("requested protocol(s) are not supported: %s; supports %s"
                                                  % (requested, list(PROTOCOLS))))
    loop = asyncio.get_running_loop()
    try:
        spec = await loop.run_in_executor(None, pods.sandbox_spec, ctx, pod, query.get("container"), command)
    except pods.PodExecError as exc:
        return _status_response(errors.ApiError(exc.message, code=exc.code, reason=exc.reason))

    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    channels = _Channels(ws, ws.ws_protocol)
    # Tell the client the streams are up (lowest writable channel, empty payload).
    await channels.send(STDOUT if want_stdout else STDERR if want_stderr else ERROR, b"")
    await _run(ws, channels, spec, want_stdin, want_stdout, want_stderr, tty)
    await ws.close()
    return ws


async def _run(ws, channels, spec, want_stdin, want_stdout, want_stderr, tty):
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *pods.sandbox_argv(spec, write_fd), pass_fds=(write_fd,), start_new_session=True,
            env={"PATH": pods.CONTAINER_PATH},
            stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if tty else asyncio.subprocess.PIPE)
    except OSError as exc:
        os.close(read_fd)
        await channels.send_status(internal_error_status(str(exc)))
        return
    finally:
        os.close(write_fd)
    started = pods.Started(process, read_fd)
    failure = await loop.run_in_executor(None, started.failure)
    if failure:
        await process.wait()
        await channels.send_status(internal_error_status(failure))
        return
    pumps = [asyncio.ensure_future(_pump(process.stdout, channels, STDOUT if want_stdout or tty else None))]
    if not tty:
        pumps.append(asyncio.ensure_future(_pump(process.stderr, channels, STDERR if want_stderr else None)))
    reader = asyncio.ensure_future(_feed_stdin(ws, channels, process))
    waiter = asyncio.ensure_future(process.wait())
    await asyncio.wait([waiter, reader], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        # The client went away: end the command like a dropped exec session does.
        started.kill()
        await waiter
        for pump in pumps:
            pump.cancel()
        return
    await asyncio.gather(*pumps, return_exceptions=True)
    reader.cancel()
    await channels.send_status(exit_status(spec["argv"], process.returncode))
