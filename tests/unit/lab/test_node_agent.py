# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's node on the real control plane: the scheduler places pods on it, and ``kubectl exec``
goes API server -> node agent -> node_exec, which runs the command with the pod's volumes mounted."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.lab import node_exec
from tests.lab.api_client import ApiClient
from tests.lab.control_plane import build
from tests.lab.control_plane.cluster import NODE_NAME

NAMESPACE = "default"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("node"))
    plane = node_exec.control_plane(os.path.join(state, "cluster"), state_dir=state)
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="module")
def client(cluster):
    return ApiClient.from_kubeconfig(cluster.kubeconfig)


def kubectl(cluster, *args, stdin=None):
    return subprocess.run([build.binary("kubectl"), "--kubeconfig", cluster.kubeconfig, *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def _wait_running(client, name, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = client.get("pods", NAMESPACE, name)
        if (pod.get("status") or {}).get("phase") == "Running":
            return pod
        time.sleep(0.2)
    raise AssertionError("pod %s not Running: %s" % (name, pod.get("status")))


@pytest.fixture(scope="module")
def app_pod(client, tmp_path_factory):
    host_dir = tmp_path_factory.mktemp("host-volume")
    (host_dir / "rows.txt").write_text("a\nb\nc\n")
    client.create("configmaps", {"metadata": {"name": "app-settings", "namespace": NAMESPACE}, "data": {"retention": "7"}})
    client.create("persistentvolumes", {"metadata": {"name": "host-pv"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
        "hostPath": {"path": str(host_dir)}}})
    client.create("persistentvolumeclaims", {"metadata": {"name": "data", "namespace": NAMESPACE}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": "host-pv",
        "resources": {"requests": {"storage": "1Gi"}}}})
    client.create("pods", {"metadata": {"name": "app", "namespace": NAMESPACE}, "spec": {
        "containers": [{"name": "main", "image": "busybox", "env": [{"name": "GREETING", "value": "hi"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "settings", "mountPath": "/etc/app"},
                                         {"name": "scratch", "mountPath": "/scratch"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "settings", "configMap": {"name": "app-settings"}},
                    {"name": "scratch", "emptyDir": {}}]}})
    return _wait_running(client, "app")


def test_the_scheduler_places_pods_on_the_lab_node(app_pod):
    assert app_pod["spec"]["nodeName"] == NODE_NAME
    conditions = {c["type"]: c["status"] for c in app_pod["status"]["conditions"]}
    assert conditions["Ready"] == "True"


def test_exec_sees_the_claim_config_map_and_environment_at_their_mount_paths(cluster, app_pod):
    result = kubectl(cluster, "exec", "app", "--", "sh", "-c", 'wc -l < /data/rows.txt; cat /etc/app/retention; echo " $GREETING"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "7", "hi"]


def test_exec_writes_land_in_the_volume_and_exit_codes_come_back(cluster, app_pod):
    assert kubectl(cluster, "exec", "app", "--", "sh", "-c", "echo kept > /scratch/f && cat /scratch/f").stdout == "kept\n"
    result = kubectl(cluster, "exec", "app", "--", "sh", "-c", "exit 7")
    assert result.returncode == 7
    assert "exit code 7" in result.stderr


def test_exec_passes_stdin(cluster, app_pod):
    result = kubectl(cluster, "exec", "-i", "app", "--", "cat", stdin="through the API server\n")
    assert result.stdout == "through the API server\n"


def test_a_command_that_does_not_exist_is_refused_by_the_runtime(cluster, app_pod):
    result = kubectl(cluster, "exec", "app", "--", "no-such-command")
    assert result.returncode != 0
    assert "no-such-command" in result.stderr


def test_a_pod_waits_for_its_csi_volume_to_be_attached(client):
    client.create("persistentvolumes", {"metadata": {"name": "csi-pv"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn",
        "csi": {"driver": "driver.longhorn.io", "volumeHandle": "vol-a"}}})
    client.create("persistentvolumeclaims", {"metadata": {"name": "csi-data", "namespace": NAMESPACE}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn", "volumeName": "csi-pv",
        "resources": {"requests": {"storage": "1Gi"}}}})
    client.create("pods", {"metadata": {"name": "csi-app", "namespace": NAMESPACE}, "spec": {
        "containers": [{"name": "main", "image": "busybox", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "csi-data"}}]}})
    # The attach-detach controller asks for the attachment; nobody attaches it here.
    deadline = time.monotonic() + 30
    attachment = None
    while attachment is None and time.monotonic() < deadline:
        found = [va for va in client.list(("storage.k8s.io", "volumeattachments"))[0]
                 if va["spec"]["source"].get("persistentVolumeName") == "csi-pv"]
        attachment = found[0] if found else None
        time.sleep(0.2)
    assert attachment is not None and attachment["spec"]["nodeName"] == NODE_NAME
    time.sleep(1)
    assert client.get("pods", NAMESPACE, "csi-app")["status"]["phase"] == "Pending"
    client.modify(("storage.k8s.io", "volumeattachments"), None, attachment["metadata"]["name"],
                  lambda va: va.update(status={"attached": True}), subresource="status")
    _wait_running(client, "csi-app")
