# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kubectl against running pods on the lab's node agent (tests/lab/node_agent, virtual-kubelet):
exec, logs, cp and rollouts go through the real API server to the node."""

from __future__ import annotations

import pytest

from tests.peer.kubectl_harness import Kubectl, start_control_plane

pytestmark = pytest.mark.integration

NODE_TIMEOUT = 60
POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "shell", "labels": {"app": "shell"}},
    "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo started; sleep 3600"]}],
             "terminationGracePeriodSeconds": 1},
}


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory):
    cp = start_control_plane(tmp_path_factory.mktemp("kubectl-exec-peer-cp"))
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def kubectl(control_plane, tmp_path_factory):
    kubectl = Kubectl(control_plane, tmp_path_factory.mktemp("kubectl-exec-home"))
    run = kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=%ds" % NODE_TIMEOUT)
    nodes = kubectl.ok("get", "nodes", "-o", "name").stdout.split()
    assert nodes and run.returncode == 0, "no Ready node within %ds (node agent missing or not joined): %s" % (NODE_TIMEOUT, run)
    return kubectl


@pytest.fixture(scope="module")
def pod(kubectl):
    kubectl.ok("create", "namespace", "peer-exec")
    kubectl.ok("apply", "-n", "peer-exec", "-f", "-", stdin=POD)
    kubectl.ok("wait", "--for=condition=Ready", "pod/shell", "-n", "peer-exec", "--timeout=120s")
    return "shell"


def test_pod_is_running_on_the_node(kubectl, pod):
    body = kubectl.ok("get", "pod", pod, "-n", "peer-exec", "-o", "json").json()
    assert body["status"]["phase"] == "Running"
    assert body["spec"]["nodeName"], body["spec"]


def test_exec_returns_output(kubectl, pod):
    run = kubectl.ok("exec", pod, "-n", "peer-exec", "--", "echo", "hello from exec")
    assert run.stdout == "hello from exec\n", run


def test_exec_propagates_the_exit_code(kubectl, pod):
    run = kubectl("exec", pod, "-n", "peer-exec", "--", "sh", "-c", "exit 7")
    assert run.returncode == 7, run


def test_exec_passes_stdin(kubectl, pod):
    run = kubectl.ok("exec", "-i", pod, "-n", "peer-exec", "--", "cat", stdin="through stdin\n")
    assert run.stdout == "through stdin\n", run


def test_cp_round_trip(kubectl, pod, tmp_path):
    source = tmp_path / "payload.txt"
    source.write_text("copied both ways\n", encoding="utf-8")
    kubectl.ok("cp", str(source), "peer-exec/%s:/tmp/payload.txt" % pod)
    assert kubectl.ok("exec", pod, "-n", "peer-exec", "--", "cat", "/tmp/payload.txt").stdout == "copied both ways\n"
    back = tmp_path / "back.txt"
    kubectl.ok("cp", "peer-exec/%s:/tmp/payload.txt" % pod, str(back))
    assert back.read_text(encoding="utf-8") == "copied both ways\n"


def test_deployment_becomes_available(kubectl):
    kubectl.ok("create", "deployment", "ready", "--image=busybox", "-n", "peer-exec", "--", "sleep", "3600")
    kubectl.ok("rollout", "status", "deployment/ready", "-n", "peer-exec", "--timeout=120s")
    kubectl.ok("wait", "--for=condition=Available", "deployment/ready", "-n", "peer-exec", "--timeout=30s")
