# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commands run in lab pods see the pod's volumes at their mount paths, and nothing leaks to the host.

Claims, volumes, ConfigMaps and Secrets live on a real API server (one seeded cluster per module, a
namespace per test; kube-controller-manager binds the claims). The pod is handed to the runtime as
the API server would return it: stored, the node agent would own its status, which these tests set.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.lab import pods
from tests.lab.context import LabConfig, LabContext


@pytest.fixture(scope="module")
def cluster(module_seeded_cluster):
    return module_seeded_cluster()


@pytest.fixture
def ctx(tmp_path, cluster):
    store = cluster.store
    context = LabContext(config=LabConfig(state_dir=str(tmp_path / "state")), store=store)
    namespace = context.extras["ns"] = "pods-%s" % uuid.uuid4().hex[:8]
    store.create("namespaces", {"metadata": {"name": namespace}})
    _bound_claim(store, namespace, "data", "vol-data")
    _bound_claim(store, namespace, "logs", "vol-logs")
    deadline = time.monotonic() + 30
    while any((store.get("persistentvolumeclaims", namespace, c).get("status") or {}).get("phase") != "Bound" for c in ("data", "logs")):
        assert time.monotonic() < deadline, "the controller-manager did not bind the claims"
        time.sleep(0.1)
    yield context
    store.delete("namespaces", "", namespace)


def _bound_claim(store, namespace, claim, handle):
    # No class on either side: the binder pairs them (the default class would go to the claim otherwise).
    volume_name = "pv-%s-%s" % (claim, namespace)
    store.create("persistentvolumes", {"metadata": {"name": volume_name}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "", "persistentVolumeReclaimPolicy": "Retain",
        "csi": {"driver": "driver.longhorn.io", "volumeHandle": handle, "fsType": "ext4"}}})
    store.create("persistentvolumeclaims", {"metadata": {"name": claim, "namespace": namespace}, "spec": {
        "volumeName": volume_name, "storageClassName": "", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})


def _pod(ctx, mounts, volumes=None, phase="Running", containers=None, env=None):
    container = {"name": "app", "image": "python:3.11", "volumeMounts": mounts, "env": env or []}
    return {"metadata": {"name": "app-0", "namespace": ctx.extras["ns"], "uid": str(uuid.uuid4())}, "spec": {
        "nodeName": "lab-node-1", "containers": containers or [container],
        "volumes": volumes or [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
        "status": {"phase": phase, "containerStatuses": [
            {"name": c["name"], "state": {"running": {}} if phase == "Running" else {"waiting": {"reason": "ContainerCreating"}}}
            for c in containers or [container]]}}


def _unique_missing_dir(parent):
    path = os.path.join(parent, "lab-test-%s" % uuid.uuid4().hex[:12])
    assert not os.path.exists(path)
    return path


def test_write_through_a_mount_lands_in_the_volume_data_dir(ctx):
    mount_path = _unique_missing_dir("/")
    pod = _pod(ctx, [{"name": "data", "mountPath": mount_path}])
    out, err, rc = pods.run_in_pod(ctx, pod, "app", ["sh", "-c", "echo hello > %s/greeting && ls %s" % (mount_path, mount_path)])
    assert (rc, out, err) == (0, b"greeting\n", b"")
    with open(os.path.join(ctx.volume_data_dir("vol-data"), "greeting"), encoding="utf-8") as handle:
        assert handle.read() == "hello\n"
    assert not os.path.exists(mount_path), "the mount point must not be created on the host"


def test_nested_mount_path_below_existing_host_dirs_leaves_the_host_alone(ctx):
    parent = _unique_missing_dir("/var/lib")
    mount_path = os.path.join(parent, "data")
    pod = _pod(ctx, [{"name": "data", "mountPath": mount_path}])
    out, _err, rc = pods.run_in_pod(ctx, pod, None, ["sh", "-c", "touch %s/PG_VERSION && ls /var/lib | grep -c . && ls %s" % (mount_path, mount_path)])
    assert rc == 0
    lines = out.decode().split()
    # The rest of /var/lib is still visible next to the new directory.
    assert int(lines[0]) == len(os.listdir("/var/lib")) + 1
    assert lines[1] == "PG_VERSION"
    assert os.path.exists(os.path.join(ctx.volume_data_dir("vol-data"), "PG_VERSION"))
    assert not os.path.exists(parent)


def test_sqlite_through_python3_in_the_pod(ctx):
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv/app"}])
    script = ("import sqlite3; db = sqlite3.connect('/srv/app/app.db'); db.execute('create table t (n int)');"
              "db.executemany('insert into t values (?)', [(i,) for i in range(1000)]); db.commit();"
              "print(db.execute('select count(*) from t').fetchone()[0])")
    out, err, rc = pods.run_in_pod(ctx, pod, "app", ["python3", "-c", script])
    assert (rc, out.strip(), err) == (0, b"1000", b"")
    assert os.path.getsize(os.path.join(ctx.volume_data_dir("vol-data"), "app.db")) > 0


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="optional host tool: the sqlite3 CLI (Debian package sqlite3) is not installed; "
                    "test_sqlite_through_python3_in_the_pod covers the same path with the lab's own python3")
def test_sqlite3_cli_in_the_pod(ctx):
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv/app"}])
    pods.run_in_pod(ctx, pod, "app", ["sqlite3", "/srv/app/app.db", "create table t (n int); insert into t values (1), (2);"])
    out, _err, rc = pods.run_in_pod(ctx, pod, "app", ["sqlite3", "/srv/app/app.db", "select count(*) from t"])
    assert (rc, out) == (0, b"2\n")


def test_two_volumes_sub_path_and_read_only(ctx):
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
               {"name": "logs", "persistentVolumeClaim": {"claimName": "logs", "readOnly": True}}]
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv/data", "subPath": "pgdata"},
                     {"name": "logs", "mountPath": "/srv/logs", "readOnly": True}], volumes=volumes)
    with open(os.path.join(ctx.volume_data_dir("vol-logs"), "old.log"), "w", encoding="utf-8") as handle:
        handle.write("x")
    out, _err, rc = pods.run_in_pod(ctx, pod, "app", ["sh", "-c", "echo 1 > /srv/data/f; cat /srv/logs/old.log; echo 2 > /srv/logs/new.log"])
    assert rc != 0, "a read-only mount refuses writes"
    assert out == b"x"
    assert os.path.exists(os.path.join(ctx.volume_data_dir("vol-data"), "pgdata", "f"))
    assert not os.path.exists(os.path.join(ctx.volume_data_dir("vol-logs"), "new.log"))


def test_environment_exit_code_stdin_and_workdir(ctx):
    ctx.store.create("secrets", {"metadata": {"name": "db", "namespace": ctx.extras["ns"]},
                                 "data": {"password": base64.b64encode(b"s3cret").decode()}})
    env = [{"name": "USER_NAME", "value": "app"}, {"name": "GREETING", "value": "hi $(USER_NAME)"},
           {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
           {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv"}], env=env)
    out, _err, rc = pods.run_in_pod(ctx, pod, "app", ["sh", "-c", 'echo "$GREETING/$PASSWORD/$POD/$HOSTNAME"; exit 7'])
    assert (rc, out) == (7, b"hi app/s3cret/app-0/app-0\n")
    out, _err, rc = pods.run_in_pod(ctx, pod, "app", ["cat"], stdin=b"piped")
    assert (rc, out) == (0, b"piped")
    out, _err, _rc = pods.run_in_pod(ctx, pod, "app", ["pwd"])
    assert out == b"/\n"


def test_config_map_volume_is_projected_as_files(ctx):
    ctx.store.create("configmaps", {"metadata": {"name": "cfg", "namespace": ctx.extras["ns"]}, "data": {"app.ini": "[main]\n"}})
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "cfg", "configMap": {"name": "cfg"}}]
    mount_path = _unique_missing_dir("/etc")
    pod = _pod(ctx, [{"name": "cfg", "mountPath": mount_path}], volumes=volumes)
    out, _err, rc = pods.run_in_pod(ctx, pod, "app", ["cat", mount_path + "/app.ini"])
    assert (rc, out) == (0, b"[main]\n")
    assert not os.path.exists(mount_path)


def test_refuses_pods_that_are_not_running(ctx):
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv"}], phase="Pending")
    with pytest.raises(pods.PodExecError) as caught:
        pods.run_in_pod(ctx, pod, "app", ["true"])
    assert caught.value.code == 400
    assert "container not found" in caught.value.message


def test_refuses_unknown_and_ambiguous_containers(ctx):
    containers = [{"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"}]
    pod = _pod(ctx, [], containers=containers)
    with pytest.raises(pods.PodExecError, match="container nope is not valid for pod app-0"):
        pods.run_in_pod(ctx, pod, "nope", ["true"])
    with pytest.raises(pods.PodExecError, match=r"a container name must be specified for pod app-0, choose one of: \[app sidecar\]"):
        pods.run_in_pod(ctx, pod, None, ["true"])
    out, _err, rc = pods.run_in_pod(ctx, pod, "sidecar", ["echo", "ok"])
    assert (rc, out) == (0, b"ok\n")


def test_missing_command_is_an_exec_failure(ctx):
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv"}])
    with pytest.raises(pods.PodExecError) as caught:
        pods.run_in_pod(ctx, pod, "app", ["no-such-binary-in-the-lab"])
    assert caught.value.reason == "InternalError"
    assert 'exec: "no-such-binary-in-the-lab": executable file not found in $PATH' in caught.value.message


def test_unbound_claim_cannot_be_mounted(ctx):
    ctx.store.create("persistentvolumeclaims", {"metadata": {"name": "pending", "namespace": ctx.extras["ns"]}, "spec": {
        "storageClassName": "", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    pod = _pod(ctx, [{"name": "p", "mountPath": "/srv"}], volumes=[{"name": "p", "persistentVolumeClaim": {"claimName": "pending"}}])
    with pytest.raises(pods.PodExecError, match="not bound"):
        pods.run_in_pod(ctx, pod, "app", ["true"])


def test_timeout_kills_the_command(ctx):
    pod = _pod(ctx, [{"name": "data", "mountPath": "/srv"}])
    with pytest.raises(subprocess.TimeoutExpired):
        pods.run_in_pod(ctx, pod, "app", ["sh", "-c", "sleep 30"], timeout=0.5)


def test_a_mount_path_below_a_symlinked_directory_follows_the_link_inside_the_pod(ctx):
    # The service-account volume the real API server adds sits at /var/run/secrets/...; on Debian
    # /var/run links to /run.  runc resolves the destination inside the rootfs; so does the lab.
    assert os.path.islink("/var/run"), "this test needs a host where /var/run is a symlink (Debian, Ubuntu)"
    mount_path = os.path.join(_unique_missing_dir("/var/run"), "serviceaccount")
    pod = _pod(ctx, [{"name": "data", "mountPath": mount_path}])
    out, err, rc = pods.run_in_pod(ctx, pod, "app", ["sh", "-c", "echo token > %s/t && cat %s/t" % (mount_path, mount_path)])
    assert (rc, out, err) == (0, b"token\n", b"")
    assert os.path.exists(os.path.join(ctx.volume_data_dir("vol-data"), "t"))
    assert not os.path.exists(os.path.dirname(mount_path)), "nothing is created on the host"
