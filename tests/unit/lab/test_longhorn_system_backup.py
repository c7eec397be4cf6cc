# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SystemBackup in the emulator: states, volume backups per policy, the archive and the upload (ref §1.7, §2)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
import zipfile

import pytest
import yaml

from tests.lab.longhorn import system_backup_controller
from tests.unit.lab.test_longhorn_volume_harness import (  # noqa: F401 pylint: disable=unused-import
    MIB,
    NS,
    env,
    lh,
    wait_for,
)

SYSTEM_BACKUP_NAME = re.compile(r"^system-backup-[0-9a-f]{16}$")


def _create(env, name, policy):  # pylint: disable=redefined-outer-name
    return env.store.create(lh(env.store, "systembackups"), {"metadata": {"name": name, "namespace": NS},
                                                             "spec": {"volumeBackupPolicy": policy}})


def _wait_final(env, name, timeout=30):  # pylint: disable=redefined-outer-name
    def _done():
        obj = env.get("systembackups", name)
        state = ((obj or {}).get("status") or {}).get("state")
        return obj if state in ("Ready", "Error") else None
    return wait_for(_done, timeout, what="system backup %s Ready or Error" % name)


def _record_states(env, name):  # pylint: disable=redefined-outer-name
    """The states the informer's watch delivers; it may trail a GET, so read it with ``_heard``."""
    states = []

    def _listen(event):
        if event.rtype_key == ("longhorn.io", "systembackups") and event.obj["metadata"]["name"] == name:
            state = (event.obj.get("status") or {}).get("state")
            if state is not None and (not states or states[-1] != state):
                states.append(state)
    env.store.add_listener(_listen)
    return states


def _heard(states, final):
    wait_for(lambda: states and states[-1] == final, what="the informer's event for state %s" % final)
    return states


def _archive(env, name):  # pylint: disable=redefined-outer-name
    """The zip and cfg as read with plain boto3, not with the lab's BackupStore."""
    client = env.s3.client()
    base = "%s/backupstore/system-backups/v1.10.2/%s/" % (env.prefix, name)
    data = client.get_object(Bucket=env.s3.bucket, Key=base + "system-backup.zip")["Body"].read()
    cfg = json.loads(client.get_object(Bucket=env.s3.bucket, Key=base + "system-backup.cfg")["Body"].read())
    return data, cfg


def _lists(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: yaml.safe_load(archive.read(info)) for info in archive.infolist() if not info.is_dir()}


def _workload_objects(env):  # pylint: disable=redefined-outer-name
    """PV/PVC pairs: two of Longhorn, one of another driver, a PVC without a class; and a Secret."""
    store = env.store
    store.create("namespaces", {"metadata": {"name": "apps"}})
    store.create("storageclasses", {"metadata": {"name": "other-sc"}, "provisioner": "rancher.io/local-path"})
    for index, (driver, sc) in enumerate((("driver.longhorn.io", "longhorn"), ("driver.longhorn.io", "longhorn"),
                                          ("rancher.io/local-path", "other-sc"))):
        spec = {"capacity": {"storage": "8Mi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": sc, "volumeMode": "Filesystem",
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "apps", "name": "claim-%d" % index}}
        if driver == "driver.longhorn.io":
            spec["csi"] = {"driver": driver, "volumeHandle": "vol-%d" % index, "fsType": "ext4"}
        else:
            spec["hostPath"] = {"path": "/tmp/x"}
        store.create("persistentvolumes", {"metadata": {"name": "pv-%d" % index}, "spec": spec})
        store.create("persistentvolumeclaims", {"metadata": {"name": "claim-%d" % index, "namespace": "apps"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": sc, "volumeName": "pv-%d" % index,
            "resources": {"requests": {"storage": "8Mi"}}}})
    store.create("persistentvolumeclaims", {"metadata": {"name": "empty-class", "namespace": "apps"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "8Mi"}}}})

    def _not_default(obj):
        obj["metadata"]["annotations"].pop("storageclass.kubernetes.io/is-default-class", None)
    store.modify("storageclasses", "", "longhorn", _not_default)
    # Without a default class the API server leaves the class nil. Its DefaultStorageClass admission reads
    # classes from an informer, which may not have seen the change yet: then the claim is made again.
    body = {"metadata": {"name": "no-class", "namespace": "apps"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}}}
    deadline = time.monotonic() + 10
    no_class = store.create("persistentvolumeclaims", body)
    while "storageClassName" in no_class["spec"] and time.monotonic() < deadline:
        store.delete("persistentvolumeclaims", "apps", "no-class")
        wait_for(lambda: store.try_get("persistentvolumeclaims", "apps", "no-class") is None, what="no-class gone")
        no_class = store.create("persistentvolumeclaims", body)
    assert "storageClassName" not in no_class["spec"]


def test_disabled_policy_archive_layout_and_upload(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    env.create_volume("vol-0")
    env.create_volume("vol-1")
    env.wait_state("vol-1", "detached")
    _workload_objects(env)
    states = _record_states(env, "sb-disabled")
    _create(env, "sb-disabled", "disabled")
    system_backup = _wait_final(env, "sb-disabled")
    status = system_backup["status"]
    assert status["state"] == "Ready", status
    assert _heard(states, "Ready") == ["CreatingVolumeBackups", "CreatingBackingImageBackups", "Generating", "Uploading", "Ready"]
    assert status["version"] == "v1.10.2"
    assert status["gitCommit"] == "020cf3d4c6935a38b57fe6e1305e1e7fb048bd20"
    assert status["managerImage"] == "longhornio/longhorn-manager:v1.10.2"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", status["createdAt"])
    assert status["lastSyncedAt"]
    # disabled: no snapshot, no backup.
    assert env.store.list(lh(env.store, "snapshots"), NS)[0] == []
    assert env.store.list(lh(env.store, "backups"), NS)[0] == []

    data, cfg = _archive(env, "sb-disabled")
    # ref §3.3: SHA-256 of the zip in the cfg.
    assert cfg["Checksum"] == hashlib.sha256(data).hexdigest()
    assert (cfg["Name"], cfg["LonghornVersion"], cfg["ManagerImage"]) == ("sb-disabled", "v1.10.2", "longhornio/longhorn-manager:v1.10.2")
    assert cfg["BackupTargetURL"] == env.target_url
    lists = _lists(data)
    assert set(lists) == {"sb-disabled/metadata.yaml"} | {
        "sb-disabled/yamls/%s/%s.yaml" % (d, f) for d, f, _k, _a, _s in system_backup_controller.ARCHIVE_FILES}
    meta = lists["sb-disabled/metadata.yaml"]
    assert meta["longhornversion"] == "v1.10.2"
    assert meta["longhornnamespaceuuid"] == env.store.get("namespaces", "", NS)["metadata"]["uid"]
    assert set(meta) == {"longhornversion", "longhorngitcommit", "kubernetesversion", "longhornnamespaceuuid", "systembackupcreatedat",
                         "managerimage"}
    for name, document in lists.items():
        if name.endswith("metadata.yaml"):
            continue
        assert document["kind"].endswith("List"), name
        assert isinstance(document["items"], list), name
    kube = "sb-disabled/yamls/kubernetes/"
    assert sorted(pv["metadata"]["name"] for pv in lists[kube + "persistentvolumes.yaml"]["items"]) == ["pv-0", "pv-1"]
    # ref §2: PVCs whose class is one of the Longhorn PVs' classes; a nil class is left out.
    assert sorted(c["metadata"]["name"] for c in lists[kube + "persistentvolumeclaims.yaml"]["items"]) == ["claim-0", "claim-1"]
    assert [sc["metadata"]["name"] for sc in lists[kube + "storageclasses.yaml"]["items"]] == ["longhorn"]
    # Upstream swaps the two RBAC file names.
    assert lists[kube + "clusterroles.yaml"]["kind"] == "ClusterRoleBindingList"
    volumes = lists["sb-disabled/yamls/longhorn/volumes.yaml"]
    assert volumes["kind"] == "VolumeList"
    assert {v["metadata"]["name"]: v["status"]["state"] for v in volumes["items"]} == {"vol-0": "detached", "vol-1": "detached"}
    assert lists["sb-disabled/yamls/longhorn/setting.yaml"]["kind"] == "SettingList"
    assert lists["sb-disabled/yamls/apiextensions/customresourcedefinitions.yaml"]["items"]
    # ref §2: no Secrets at all (the credential secret must be recreated by hand).
    assert not any("secrets" in name for name in lists)
    assert base64.b64encode(env.s3.secret_key.encode()) not in data
    assert env.s3.secret_key.encode() not in data


def test_always_policy_backs_up_every_volume(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    for name in ("vol-a", "vol-b"):
        env.create_volume(name)
        env.write_files(name, {"data.txt": name.encode() * 100})
    env.wait_state("vol-b", "detached")
    _create(env, "sb-always", "always")
    assert _wait_final(env, "sb-always")["status"]["state"] == "Ready"
    backups = env.store.list(lh(env.store, "backups"), NS)[0]
    assert len(backups) == 2
    by_volume = {b["status"]["volumeName"]: b for b in backups}
    for name in ("vol-a", "vol-b"):
        backup = by_volume[name]
        assert SYSTEM_BACKUP_NAME.match(backup["metadata"]["name"])
        assert backup["spec"]["snapshotName"] == backup["metadata"]["name"]
        assert backup["metadata"]["labels"]["backup-target"] == "default"
        assert env.volume(name)["status"]["lastBackup"] == backup["metadata"]["name"]
    data, _cfg = _archive(env, "sb-always")
    volumes = _lists(data)["sb-always/yamls/longhorn/volumes.yaml"]["items"]
    # The archive is generated after the volume backups: status.lastBackup is in it.
    assert {v["metadata"]["name"]: v["status"]["lastBackup"] for v in volumes} == {
        n: by_volume[n]["metadata"]["name"] for n in ("vol-a", "vol-b")}


def test_if_not_present_skips_unchanged_volumes_but_still_snapshots(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    env.create_volume("steady")
    env.create_volume("changing")
    env.write_files("steady", {"a": b"1" * 5000})
    env.write_files("changing", {"a": b"2" * 5000})
    env.wait_state("changing", "detached")
    _create(env, "sb-first", "")
    assert _wait_final(env, "sb-first")["status"]["state"] == "Ready"
    assert len(env.store.list(lh(env.store, "backups"), NS)[0]) == 2
    first_backup = env.volume("steady")["status"]["lastBackup"]

    env.write_files("changing", {"b": b"new data"})
    _create(env, "sb-second", "if-not-present")
    assert _wait_final(env, "sb-second")["status"]["state"] == "Ready"
    backups = env.store.list(lh(env.store, "backups"), NS)[0]
    assert len(backups) == 3
    assert env.volume("steady")["status"]["lastBackup"] == first_backup
    assert env.volume("changing")["status"]["lastBackup"] != first_backup
    # ref §1.7: an up-to-date volume still gets a new snapshot on every system backup.
    snapshots = [s for s in env.store.list(lh(env.store, "snapshots"), NS)[0] if s["spec"]["volume"] == "steady"]
    assert len(snapshots) == 2
    assert all(SYSTEM_BACKUP_NAME.match(s["metadata"]["name"]) for s in snapshots)


def test_a_failed_volume_backup_fails_the_system_backup(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    env.create_volume("bad")
    env.wait_state("bad", "detached")
    env.faults.fail_backup("bad")
    _create(env, "sb-fail", "always")
    status = _wait_final(env, "sb-fail")["status"]
    assert status["state"] == "Error"
    condition = [c for c in status["conditions"] if c["type"] == "Error"][0]
    assert condition["status"] == "True"
    assert condition["reason"] == "Start"
    backup = env.store.list(lh(env.store, "backups"), NS)[0][0]
    assert backup["status"]["state"] == "Error"
    # The backup's own error follows the prefix (backup_controller's wording).
    assert condition["message"] == "failed creating Volume backup %s: %s" % (backup["metadata"]["name"], backup["status"]["error"])
    assert SYSTEM_BACKUP_NAME.match(backup["metadata"]["name"])
    assert env.backupstore().list_system_backups() == []


def test_system_backup_found_in_the_store_is_synced(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    env.backupstore().write_system_backup("v1.10.1", "sb-remote", b"PK\x05\x06" + b"\0" * 18,
                                          manager_image="longhornio/longhorn-manager:v1.10.1",
                                          engine_image="longhornio/longhorn-engine:v1.10.1", git_commit="29b7fda2",
                                          target_url=env.target_url, created_at="2026-10-01T08:00:00.5Z")
    states = _record_states(env, "sb-remote")
    env.sync_system_backups()
    status = _wait_final(env, "sb-remote")["status"]
    assert _heard(states, "Ready") == ["Syncing", "Ready"]
    assert (status["version"], status["gitCommit"], status["managerImage"], status["createdAt"]) == (
        "v1.10.1", "29b7fda2", "longhornio/longhorn-manager:v1.10.1", "2026-10-01T08:00:00Z")
    # Nothing was backed up for a synced system backup.
    assert env.store.list(lh(env.store, "snapshots"), NS)[0] == []


def test_a_new_system_backup_named_like_a_remote_one_is_synced(env):  # pylint: disable=redefined-outer-name
    env.configure_target()
    env.backupstore().write_system_backup("v1.10.2", "sb-taken", b"zip", manager_image="m", engine_image="e", git_commit="g",
                                          target_url=env.target_url, created_at="2026-10-01T08:00:00Z")
    _create(env, "sb-taken", "always")
    system_backup = _wait_final(env, "sb-taken")
    assert system_backup["metadata"]["labels"]["longhorn.io/version"] == "v1.10.2"
    assert system_backup["status"]["managerImage"] == "m"


@pytest.mark.parametrize("cr_only", [False, True])
def test_deleting_a_system_backup_deletes_remote_data_unless_cr_only(env, cr_only):  # pylint: disable=redefined-outer-name
    env.configure_target()
    _create(env, "sb-del", "disabled")
    assert _wait_final(env, "sb-del")["status"]["state"] == "Ready"
    assert [i["name"] for i in env.backupstore().list_system_backups()] == ["sb-del"]
    if cr_only:
        def _label(obj):
            obj["metadata"].setdefault("labels", {})["longhorn.io/delete-custom-resource-only"] = "true"
        env.store.modify(lh(env.store, "systembackups"), NS, "sb-del", _label)
    env.store.delete(lh(env.store, "systembackups"), NS, "sb-del")
    wait_for(lambda: env.get("systembackups", "sb-del") is None, what="system backup CR gone")
    remaining = [i["name"] for i in env.backupstore().list_system_backups()]
    assert remaining == (["sb-del"] if cr_only else [])
