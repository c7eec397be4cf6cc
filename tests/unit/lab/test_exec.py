# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``pods/exec`` driven by the kubernetes client's ``stream()`` as kubernetes.core.k8s_exec drives it.

The path is the lab's: kube-apiserver, the lab's node agent, then the lab's exec runtime
(``tests/lab/node_exec.py`` and ``pods.py``) with the pod's volumes mounted. One lab per module
with one Running pod whose claim the lab's CSI driver provisioned and attached.
"""

from __future__ import annotations

import os
import time

import pytest
import yaml
from kubernetes import client, config
from kubernetes.stream import stream

from tests.lab.lab import Lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory, lab_template):
    with Lab(str(tmp_path_factory.mktemp("exec-lab")), template=lab_template()) as running:
        api = client.CoreV1Api(config.new_client_from_config(running.kubeconfig))
        api.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn", "resources": {"requests": {"storage": "1Gi"}}}})
        api.create_namespaced_pod("default", {"metadata": {"name": "app"}, "spec": {"containers": [
            {"name": "app", "image": "sqlite", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
        deadline = time.monotonic() + 60
        while api.read_namespaced_pod("app", "default").status.phase != "Running":
            assert time.monotonic() < deadline, "the pod did not start"
            time.sleep(0.1)
        yield running.ctx, api, running


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
    ctx, api, _running = lab
    out, err, rc, status = _k8s_exec(api, "app", ["sh", "-c", "echo stored > /data/file; cat /data/file; echo warn >&2"])
    assert (out, err, rc) == ("stored\n", "warn\n", 0)
    assert status == {"metadata": {}, "status": "Success"}
    volume = api.read_namespaced_persistent_volume_claim("data", "default").spec.volume_name
    with open(os.path.join(ctx.volume_data_dir(volume), "file"), encoding="utf-8") as handle:
        assert handle.read() == "stored\n"


def test_k8s_exec_flow_non_zero_exit(lab):
    _ctx, api, _running = lab
    out, _err, rc, status = _k8s_exec(api, "app", ["sh", "-c", "echo partial; exit 3"])
    assert (out, rc) == ("partial\n", 3)
    # What k8s_exec reads: the reason and the ExitCode cause. The wording after the prefix is the node
    # agent's own (the kubelet says "error executing command [...], exit code 3").
    assert status["message"].startswith("command terminated with non-zero exit code: ")
    assert {k: v for k, v in status.items() if k != "message"} == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}


def test_sqlite_count_through_exec(lab):
    _ctx, api, _running = lab
    script = ("import sqlite3; db = sqlite3.connect('/data/app.db'); db.execute('create table if not exists t (n int)');"
              "db.executemany('insert into t values (?)', [(i,) for i in range(1000)]); db.commit()")
    assert _k8s_exec(api, "app", ["python3", "-c", script])[2] == 0
    out, _err, rc, _status = _k8s_exec(api, "app", ["python3", "-c", "import sqlite3; print(sqlite3.connect('/data/app.db')"
                                                                     ".execute('select count(*) from t').fetchone()[0])"])
    assert (out, rc) == ("1000\n", 0)


def test_preloaded_stream_and_returncode(lab):
    _ctx, api, _running = lab
    output = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["echo", "hello"],
                    stdout=True, stderr=True, stdin=False, tty=False)
    assert output == "hello\n"
    resp = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["sh", "-c", "exit 5"],
                  stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False)
    resp.run_forever(timeout=10)
    assert resp.returncode == 5


def test_stdin_is_fed_to_the_command(lab):
    _ctx, api, _running = lab
    resp = stream(api.connect_get_namespaced_pod_exec, "app", "default", command=["head", "-c", "5"],
                  stdout=True, stderr=True, stdin=True, tty=False, _preload_content=False)
    resp.write_stdin("hello world")
    resp.run_forever(timeout=10)
    assert resp.returncode == 0
    assert resp.read_all() == "hello"


def test_unknown_command_fails_and_says_why(lab):
    """The runtime's refusal (pods.py) reaches the client; through the node agent it is a failed exec
    with the runtime's message on stderr (the kubelet would answer 500 InternalError)."""
    _ctx, api, _running = lab
    out, err, rc, status = _k8s_exec(api, "app", ["no-such-binary"])
    assert out == "" and rc != 0
    assert status["status"] == "Failure"
    assert 'exec: "no-such-binary": executable file not found in $PATH' in err + status.get("message", "")
