# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``pods/exec`` over websockets, driven by the kubernetes client's ``stream()`` as kubernetes.core.k8s_exec drives it.

The handler is served by a minimal aiohttp app here, so these tests do not depend on
the rest of the API server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time

import pytest
import websocket
import yaml
from aiohttp import web
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from tests.lab.context import LabConfig, LabContext
from tests.lab.kube import exec as kube_exec
from tests.lab.kube.resources import Registry
from tests.lab.kube.store import Store


class _Server:
    """aiohttp on a loop in a thread: the exec route and a plain pod GET."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.loop = asyncio.new_event_loop()
        self.port = None
        self._runner = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def _serve(self, ready):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/exec", self._exec)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._get)
        self._runner = web.AppRunner(app)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # pylint: disable=protected-access
        ready.set()
        self.loop.run_forever()

    async def _exec(self, request):
        return await kube_exec.handle_exec(request, self.ctx, request.match_info["ns"], request.match_info["name"])

    async def _get(self, request):
        return web.json_response(self.ctx.store.get("pods", request.match_info["ns"], request.match_info["name"]))

    def stop(self):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def lab(tmp_path):
    store = Store(Registry())
    ctx = LabContext(config=LabConfig(state_dir=str(tmp_path / "state")), store=store)
    store.create("namespaces", {"metadata": {"name": "default"}})
    store.create("persistentvolumes", {"metadata": {"name": "pv-data"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "csi": {"driver": "driver.longhorn.io", "volumeHandle": "vol-data"}}})
    store.create("persistentvolumeclaims", {"metadata": {"name": "data", "namespace": "default"}, "spec": {"volumeName": "pv-data"}})
    store.modify("persistentvolumeclaims", "default", "data", lambda o: o.update(status={"phase": "Bound"}), subresource="status")
    _running_pod(store, "app", [{"name": "app", "image": "sqlite", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}])
    server = _Server(ctx)
    config = client.Configuration()
    config.host = "http://127.0.0.1:%d" % server.port
    api = client.CoreV1Api(client.ApiClient(config))
    yield ctx, api, server
    server.stop()


def _running_pod(store, name, containers, phase="Running"):
    store.create("pods", {"metadata": {"name": name, "namespace": "default"}, "spec": {
        "nodeName": "lab-node-1", "containers": containers,
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    store.modify("pods", "default", name, lambda o: o.update(status={"phase": phase}), subresource="status")


def _k8s_exec(api, pod, command, container=None):
    """What kubernetes.core 6.2.0 k8s_exec does (plugins/modules/k8s_exec.py execute_module)."""
    kwargs = {"container": container} if container else {}
    resp = stream(api.connect_get_namespaced_pod_exec, pod, "default", command=command, stdout=True, stderr=True,
                  stdin=False, tty=False, _preload_content=False, **kwargs)
    stdout, stderr = [], []
    while resp.is_open():
        resp.update(timeout=1)
        if resp.peek_stdout():
            stdout.append(resp.read_stdout())
        if resp.peek_stderr():
            stderr.append(resp.read_stderr())
    err = yaml.safe_load(resp.read_channel(3))
    rc = 0 if err["status"] == "Success" else int(err["details"]["causes"][0]["message"])
    return "".join(stdout), "".join(stderr), rc, err


def test_k8s_exec_flow_success_and_volume(lab):
    ctx, api, _server = lab
    out, err, rc, status = _k8s_exec(api, "app", ["sh", "-c", "echo stored > /data/file; cat /data/file; echo warn >&2"])
    assert (out, err, rc) == ("stored\n", "warn\n", 0)
    assert status == {"metadata": {}, "status": "Success"}
    with open(os.path.join(ctx.volume_data_dir("vol-data"), "file"), encoding="utf-8") as handle:
        assert handle.read() == "stored\n"


def test_k8s_exec_flow_non_zero_exit(lab):
    _ctx, api, _server = lab
    out, _err, rc, status = _k8s_exec(api, "app", ["sh", "-c", "echo partial; exit 3"])
    assert (out, rc) == ("partial\n", 3)
    assert status == {"metadata": {}, "status": "Failure",
                      "message": "command terminated with non-zero exit code: error executing command [sh -c echo partial; exit 3], exit code 3",
                      "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}


def test_sqlite_count_through_exec(lab):
    _ctx, api, _server = lab
    script = ("import sqlite3; db = sqlite3.connect('/data/app.db'); db.execute('create table if not exists t (n int)');"
              "db.executemany('insert into t values (?)', [(i,) for i in range(1000)]); db.commit()")
    assert _k8s_exec(api, "app", ["python3", "-c", script])[2] == 0
    out, _err, rc, _status = _k8s_exec(api, "app", ["python3", "-c", "import sqlite3; print(sqlite3.connect('/data/app.db')"
                                                                     ".execute('select count(*) from t').fetchone()[0])"])
    assert (out, rc) == ("1000\n", 0)


def test_preloaded_stream_and_returncode(lab):
    _ctx, api, _server = lab
    output = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["echo", "hello"],
                    stdout=True, stderr=True, stdin=False, tty=False)
    assert output == "hello\n"
    resp = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["sh", "-c", "exit 5"],
                  stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.returncode == 5


def test_stdin_is_fed_to_the_command(lab):
    _ctx, api, _server = lab
    resp = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["head", "-c", "5"],
                  stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False)
    resp.write_stdin("hello world")
    resp.run_forever(timeout=10)
    assert resp.returncode == 0
    assert resp.read_all() == "hello"


def test_missing_pod_is_a_404_status_before_the_upgrade(lab):
    _ctx, api, _server = lab
    with pytest.raises(ApiException) as caught:
        stream(api.connect_get_namespaced_pod_exec, "nope", "default", command=["true"], stdout=True, stderr=True, stdin=False, tty=False)
    assert "404" in str(caught.value)
    assert '"reason": "NotFound"' in str(caught.value) or '"reason":"NotFound"' in str(caught.value)


def test_pod_not_running_is_refused_before_the_upgrade(lab):
    ctx, api, _server = lab
    _running_pod(ctx.store, "pending", [{"name": "app", "image": "x"}], phase="Pending")
    with pytest.raises(ApiException) as caught:
        stream(api.connect_get_namespaced_pod_exec, "pending", "default", command=["true"], stdout=True, stderr=True, stdin=False, tty=False)
    assert "400" in str(caught.value) and "container not found" in str(caught.value)


def test_unknown_command_reports_an_internal_error_status(lab):
    _ctx, api, _server = lab
    resp = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["no-such-binary"],
                  stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    status = json.loads(resp.read_channel(3))
    assert status["reason"] == "InternalError" and status["code"] == 500
    assert 'exec: "no-such-binary": executable file not found in $PATH' in status["message"]


def _raw_socket(server, query, protocol):
    url = "ws://127.0.0.1:%d/api/v1/namespaces/default/pods/app/exec?%s" % (server.port, query)
    sock = websocket.WebSocket()
    sock.connect(url, subprotocols=[protocol])
    return sock


def _frames(sock):
    """Every frame until the server closes the connection."""
    frames = []
    sock.settimeout(10)
    try:
        while True:
            opcode, data = sock.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return frames
            frames.append((opcode, data))
    finally:
        sock.close()


def test_v5_protocol_closes_stdin_with_channel_255(lab):
    _ctx, _api, server = lab
    sock = _raw_socket(server, "command=cat&stdin=true&stdout=true&stderr=true", kube_exec.V5)
    assert sock.subprotocol == kube_exec.V5
    sock.send_binary(b"\x00abc")
    sock.send_binary(b"\xff\x00")         # close stdin: cat sees EOF and exits
    frames = _frames(sock)
    assert frames[0] == (websocket.ABNF.OPCODE_BINARY, b"\x01"), "first an empty frame on the lowest writable channel"
    stdout = b"".join(data[1:] for _op, data in frames if data[:1] == b"\x01")
    assert stdout == b"abc"
    assert json.loads(frames[-1][1][1:]) == {"metadata": {}, "status": "Success"}


def test_base64_protocol_uses_text_frames(lab):
    _ctx, _api, server = lab
    sock = _raw_socket(server, "command=echo&command=hi&stdout=true", kube_exec.V4_BASE64)
    frames = _frames(sock)
    assert all(op == websocket.ABNF.OPCODE_TEXT for op, _data in frames)
    payload = b"".join(base64.b64decode(data[1:]) for _op, data in frames if data[:1] == b"1")
    assert payload == b"hi\n"
    assert json.loads(base64.b64decode(frames[-1][1][1:])) == {"metadata": {}, "status": "Success"}


def test_old_channel_protocol_sends_only_errors(lab):
    _ctx, _api, server = lab
    sock = _raw_socket(server, "command=false&stdout=true", kube_exec.V1)
    frames = _frames(sock)
    errors = [data[1:] for _op, data in frames if data[:1] == b"\x03" and len(data) > 1]
    assert errors == [b"command terminated with non-zero exit code: error executing command [false], exit code 1"]
    sock = _raw_socket(server, "command=true&stdout=true", kube_exec.V1)
    assert [data for _op, data in _frames(sock) if data[:1] == b"\x03" and len(data) > 1] == []


def test_request_without_streams_is_refused(lab):
    _ctx, _api, server = lab
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        _raw_socket(server, "command=true", kube_exec.V4)
    assert caught.value.status_code == 400


def test_exec_through_the_lab_api_server(lab_factory):
    """The whole path: API server route, provisioning, attachment, a Running pod, then exec."""
    running = lab_factory()
    from kubernetes import config  # pylint: disable=import-outside-toplevel
    api = client.CoreV1Api(config.new_client_from_config(running.kubeconfig))
    api.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn", "resources": {"requests": {"storage": "1Gi"}}}})
    api.create_namespaced_pod("default", {"metadata": {"name": "app"}, "spec": {"containers": [
        {"name": "app", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    deadline = time.monotonic() + 30
    while api.read_namespaced_pod("app", "default").status.phase != "Running":
        assert time.monotonic() < deadline, "the pod did not start"
        time.sleep(0.1)
    out, _err, rc, _status = _k8s_exec(api, "app", ["sh", "-c", "echo through-the-api > /data/proof && cat /data/proof"])
    assert (out, rc) == ("through-the-api\n", 0)
    volume = api.read_namespaced_persistent_volume_claim("data", "default").spec.volume_name
    with open(os.path.join(running.ctx.volume_data_dir(volume), "proof"), encoding="utf-8") as handle:
        assert handle.read() == "through-the-api\n"
