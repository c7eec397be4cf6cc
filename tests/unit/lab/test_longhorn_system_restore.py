# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SystemRestore in the emulator after the cluster was rebuilt (ref §1.8, §2 "Restore behaviour")."""

from __future__ import annotations

import os
import time

import pytest

from tests.lab.longhorn import system_restore_controller, volumedata
from tests.lab.longhorn.backupstore import encode_backup_url
from tests.unit.lab.test_longhorn_volume_harness import (  # noqa: F401 pylint: disable=unused-import
    MIB,
    NS,
    env,
    lh,
    wait_for,
)

MANAGER_IMAGE = "longhornio/longhorn-manager:v1.10.2"


def _backup_volume(env, volume):  # pylint: disable=redefined-outer-name
    """A volume backup over CRs: Snapshot, then Backup (ref §1.6)."""
    snap = "snap-" + volume
    env.store.create(lh(env.store, "snapshots"), {"metadata": {"name": snap, "namespace": NS}, "spec": {"volume": volume, "createSnapshot": True}})
    wait_for(lambda: (env.get("snapshots", snap).get("status") or {}).get("readyToUse"), what="snapshot ready")
    env.store.create(lh(env.store, "backups"), {"metadata": {"name": "backup-" + volume, "namespace": NS,
                                                             "labels": {"backup-volume": volume, "backup-target": "default"}},
                                                "spec": {"snapshotName": snap}})
    env.wait_volume(volume, lambda v: v["status"].get("lastBackup") == "backup-" + volume, what="backup of %s" % volume)
    return "backup-" + volume


def _pv_and_pvc(env, volume):  # pylint: disable=redefined-outer-name
    env.store.create("persistentvolumes", {"metadata": {"name": "pv-" + volume}, "spec": {
        "capacity": {"storage": "8Mi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "longhorn-static", "volumeMode": "Filesystem",
        "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "apps", "name": "claim-" + volume, "uid": "old"},
        "csi": {"driver": "driver.longhorn.io", "volumeHandle": volume, "fsType": "ext4"}}})
    env.store.create("persistentvolumeclaims", {"metadata": {"name": "claim-" + volume, "namespace": "apps"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn-static", "volumeName": "pv-" + volume,
        "resources": {"requests": {"storage": "8Mi"}}}})
    for kind, namespace, name in (("persistentvolumes", "", "pv-" + volume), ("persistentvolumeclaims", "apps", "claim-" + volume)):
        def _bound(obj):
            obj.setdefault("status", {})["phase"] = "Bound"
        env.store.modify(kind, namespace, name, _bound, subresource="status")


def _old_cluster(env):  # pylint: disable=redefined-outer-name
    """Two volumes with data, one backed up; their PVs/PVCs; a system backup; then the cluster is gone."""
    env.configure_target()
    env.store.create("namespaces", {"metadata": {"name": "apps"}})
    env.store.create("storageclasses", {"metadata": {"name": "longhorn-static"}, "provisioner": "driver.longhorn.io",
                                        "parameters": {"numberOfReplicas": "1"}})
    digests = {}
    for name, content in (("vol-data", os.urandom(3 * MIB)), ("vol-empty", b"never backed up")):
        env.create_volume(name)
        env.write_files(name, {"dir/file.bin": content, "top.txt": name.encode()})
        digests[name] = volumedata.dir_digest(env.ctx.volume_data_dir(name))
        _pv_and_pvc(env, name)
    env.wait_state("vol-empty", "detached")
    last_backup = _backup_volume(env, "vol-data")
    env.wait_state("vol-data", "detached")
    env.store.create(lh(env.store, "systembackups"), {"metadata": {"name": "sb-full", "namespace": NS},
                                                      "spec": {"volumeBackupPolicy": "disabled"}})
    wait_for(lambda: (env.get("systembackups", "sb-full").get("status") or {}).get("state") == "Ready", what="system backup Ready")
    env.wipe()
    return digests, last_backup


def _new_cluster(env, last_backup):  # pylint: disable=redefined-outer-name
    """The rebuilt cluster: target configured again, namespaces created, backups synced."""
    env.configure_target()
    env.store.create("namespaces", {"metadata": {"name": "apps"}})
    env.sync_backup_crs("vol-data", last_backup)
    env.sync_system_backups()
    wait_for(lambda: (env.get("systembackups", "sb-full").get("status") or {}).get("state") == "Ready", what="synced system backup")


def _record(env):  # pylint: disable=redefined-outer-name
    """ADDED events of volumes, PVs and PVCs, with what the PV's volume looked like at that moment."""
    added = []

    def _listen(event):
        if event.type != "ADDED" or event.rtype_key not in (("longhorn.io", "volumes"), ("", "persistentvolumes"), ("", "persistentvolumeclaims")):
            return
        entry = {"kind": event.rtype_key[1], "name": event.obj["metadata"]["name"], "at": time.monotonic(), "obj": event.obj}
        if event.rtype_key == ("", "persistentvolumes"):
            handle = event.obj["spec"]["csi"]["volumeHandle"]
            volume = env.store.try_get(lh(env.store, "volumes"), NS, handle)
            entry["volume_restore_required"] = (volume.get("status") or {}).get("restoreRequired")
        added.append(entry)
    env.store.add_listener(_listen)
    return added


def _restore_states(env, name):  # pylint: disable=redefined-outer-name
    seen = []

    def _listen(event):
        if event.rtype_key == ("longhorn.io", "systemrestores") and event.obj["metadata"]["name"] == name:
            state = (event.obj.get("status") or {}).get("state")
            labels = event.obj["metadata"].get("labels") or {}
            seen.append((state, labels.get("longhorn.io/system-restore")))
    env.store.add_listener(_listen)
    return seen


def _create_restore(env, name="sr"):  # pylint: disable=redefined-outer-name
    return env.store.create(lh(env.store, "systemrestores"), {"metadata": {"name": name, "namespace": NS}, "spec": {"systemBackup": "sb-full"}})


def _wait_restore(env, name="sr", timeout=60):  # pylint: disable=redefined-outer-name
    def _final():
        obj = env.get("systemrestores", name)
        return obj if ((obj or {}).get("status") or {}).get("state") in ("Completed", "Error") else None
    return wait_for(_final, timeout, what="system restore %s final" % name)


def test_system_restore_after_a_rebuild(env):  # pylint: disable=redefined-outer-name
    digests, last_backup = _old_cluster(env)
    assert env.volume("vol-data") is None
    _new_cluster(env, last_backup)
    # Existing objects are not overwritten: a StorageClass and a volume that came back before the restore.
    env.store.create("storageclasses", {"metadata": {"name": "longhorn-static"}, "provisioner": "driver.longhorn.io",
                                        "parameters": {"numberOfReplicas": "2"}})
    env.create_volume("vol-empty", size=4 * MIB)
    env.wait_state("vol-empty", "detached")
    added = _record(env)
    seen = _restore_states(env, "sr")

    _create_restore(env)
    restore = _wait_restore(env)
    status = restore["status"]
    assert status["state"] == "Completed", status
    # The listener hears the informer's watch, which may trail the GET that saw the final state.
    wait_for(lambda: seen and seen[-1][0] == "Completed", what="the informer's Completed event")
    states = [s for i, (s, _l) in enumerate(seen) if s and (i == 0 or seen[i - 1][0] != s)]
    assert states == ["Pending", "Initializing", "Downloading", "Unpacking", "Restoring", "Completed"]
    assert ("Restoring", "InProgress") in seen
    wait_for(lambda: "longhorn.io/system-restore" not in (env.get("systemrestores", "sr")["metadata"].get("labels") or {}),
             what="InProgress label removed")
    source_url = env.target_url + "backupstore/system-backups/v1.10.2/sb-full"
    assert status["sourceURL"] == source_url

    job = env.store.get("jobs", NS, "longhorn-system-rollout-sr")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == MANAGER_IMAGE
    assert container["command"] == ["longhorn-manager", "system-rollout", "sr"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == restore["metadata"]["uid"]
    wait_for(lambda: (env.store.get("jobs", NS, "longhorn-system-rollout-sr").get("status") or {}).get("succeeded") == 1, what="job done")

    # The backed-up volume comes back from its last backup through the default target.
    data = env.wait_volume("vol-data", lambda v: not v["status"]["restoreRequired"] and v["status"]["state"] == "detached", what="restored")
    assert data["spec"]["fromBackup"] == encode_backup_url(last_backup, "vol-data", env.target_url)
    assert data["spec"]["nodeID"] == ""
    assert [e["obj"]["spec"]["nodeID"] for e in added if e["kind"] == "volumes"] == [""]
    annotations = data["metadata"]["annotations"]
    assert annotations["longhorn.io/last-system-restored-backup"] == data["spec"]["fromBackup"]
    assert annotations["longhorn.io/last-system-restored"] == source_url
    assert annotations["longhorn.io/last-system-restored-at"]
    assert volumedata.dir_digest(env.ctx.volume_data_dir("vol-data")) == digests["vol-data"]

    # The volume that existed is skipped, not overwritten.
    empty = env.volume("vol-empty")
    assert empty["spec"]["size"] == str(4 * MIB)
    assert "fromBackup" not in empty["spec"] or not empty["spec"]["fromBackup"]
    assert empty["metadata"]["annotations"]["longhorn.io/last-skipped-system-restored"] == source_url
    assert "longhorn.io/last-system-restored" not in empty["metadata"]["annotations"]
    storage_class = env.store.get("storageclasses", "", "longhorn-static")
    assert storage_class["parameters"] == {"numberOfReplicas": "2"}
    assert storage_class["metadata"]["annotations"]["longhorn.io/last-skipped-system-restored"] == source_url

    # Settings that exist are only tagged, read-only ones included (datastore.UpdateSetting's annotation is gone again).
    setting = env.get("settings", "crd-api-version")
    assert setting["metadata"]["annotations"]["longhorn.io/last-skipped-system-restored"] == source_url
    assert "longhorn.io/update-setting-from-longhorn" not in setting["metadata"]["annotations"]

    # Order: volumes, then each PV once its volume finished restoring (claimRef removed), then PVCs.
    volumes = [e for e in added if e["kind"] == "volumes"]
    pvs = [e for e in added if e["kind"] == "persistentvolumes"]
    pvcs = [e for e in added if e["kind"] == "persistentvolumeclaims"]
    assert [e["name"] for e in volumes] == ["vol-data"]
    assert sorted(e["name"] for e in pvs) == ["pv-vol-data", "pv-vol-empty"]
    assert sorted((e["obj"]["metadata"]["namespace"], e["name"]) for e in pvcs) == [("apps", "claim-vol-data"), ("apps", "claim-vol-empty")]
    assert all(e["volume_restore_required"] is False for e in pvs), [(e["name"], e["volume_restore_required"]) for e in pvs]
    assert all("claimRef" not in e["obj"]["spec"] for e in pvs)
    assert max(e["at"] for e in volumes) < min(e["at"] for e in pvs)
    assert max(e["at"] for e in pvs) < min(e["at"] for e in pvcs)
    assert all(e["obj"]["metadata"]["annotations"]["longhorn.io/last-system-restored"] == source_url for e in pvs + pvcs)


def test_volume_without_backup_comes_back_empty(env):  # pylint: disable=redefined-outer-name
    _digests, last_backup = _old_cluster(env)
    _new_cluster(env, last_backup)
    _create_restore(env)
    assert _wait_restore(env)["status"]["state"] == "Completed"
    empty = env.volume("vol-empty")
    assert not empty["spec"].get("fromBackup")
    assert empty["metadata"]["annotations"]["longhorn.io/last-system-restored-backup"] == ""
    assert empty["spec"]["size"] == str(8 * MIB)
    assert os.listdir(env.ctx.volume_data_dir("vol-empty")) == []
    assert env.store.try_get("persistentvolumeclaims", "apps", "claim-vol-empty") is not None


def test_a_failing_volume_blocks_pvs_and_pvcs_and_fails_the_restore(env, monkeypatch):  # pylint: disable=redefined-outer-name
    monkeypatch.setattr(system_restore_controller, "KIND_RESTORE_TIMEOUT", 1.0)
    _digests, last_backup = _old_cluster(env)
    _new_cluster(env, last_backup)
    env.faults.fail_restore("vol-data")
    _create_restore(env)
    status = _wait_restore(env)["status"]
    assert status["state"] == "Error"
    condition = [c for c in status["conditions"] if c["type"] == "Error"][0]
    assert condition["reason"] == "Restore"
    assert condition["message"].startswith("failed to restore Longhorn system: ")
    assert "volume is waiting to restore data" in condition["message"]
    # ref §2 / #5086: the PV loop stops at the first blocked volume, so later PVs and PVCs wait too.
    assert env.store.try_get("persistentvolumes", "", "pv-vol-data") is None
    assert env.store.try_get("persistentvolumeclaims", "apps", "claim-vol-data") is None
    assert env.volume("vol-data")["status"]["robustness"] == "faulted"


def test_checksum_mismatch_of_the_archive_fails_the_download(env):  # pylint: disable=redefined-outer-name
    _digests, last_backup = _old_cluster(env)
    key = "%s/backupstore/system-backups/v1.10.2/sb-full/system-backup.zip" % env.prefix
    env.s3.client().put_object(Bucket=env.s3.bucket, Key=key, Body=b"PK\x05\x06" + b"\0" * 18)
    _new_cluster(env, last_backup)
    _create_restore(env)
    status = _wait_restore(env)["status"]
    assert status["state"] == "Error"
    condition = [c for c in status["conditions"] if c["type"] == "Error"][0]
    assert condition["reason"] == "Restore"
    assert "checksum mismatched" in condition["message"]
    assert env.volume("vol-data") is None


@pytest.mark.parametrize("namespace_exists", [True, False])
def test_pvc_needs_its_namespace(env, monkeypatch, namespace_exists):  # pylint: disable=redefined-outer-name
    monkeypatch.setattr(system_restore_controller, "KIND_RESTORE_TIMEOUT", 1.0)
    _digests, last_backup = _old_cluster(env)
    _new_cluster(env, last_backup)
    if not namespace_exists:
        env.store.delete("namespaces", "", "apps")
        wait_for(lambda: env.store.try_get("namespaces", "", "apps") is None, what="namespace gone")
    _create_restore(env)
    status = _wait_restore(env)["status"]
    assert status["state"] == ("Completed" if namespace_exists else "Error")
    assert (env.store.try_get("persistentvolumeclaims", "apps", "claim-vol-data") is not None) is namespace_exists
