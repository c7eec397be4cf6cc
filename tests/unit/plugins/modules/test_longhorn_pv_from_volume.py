# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_pv_from_volume and _pv_from_volume with a fake cluster."""

from __future__ import annotations

import copy
import json
import re

import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _pv_from_volume as pvv
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_pv_from_volume as module_under_test

NS = "longhorn-system"


def _volume(name, claim=None, restoring=False, mode="rwo", size="67108864", replicas=2):
    status = {"state": "detached", "restoreRequired": restoring}
    if claim:
        status["kubernetesStatus"] = {"namespace": claim[0], "pvcName": claim[1], "pvName": ""}
    return {"metadata": {"name": name}, "spec": {"size": size, "accessMode": mode, "numberOfReplicas": replicas, "staleReplicaTimeout": 30},
            "status": status}


def _pv(name, handle):
    return {"metadata": {"name": name}, "spec": {"csi": {"driver": "driver.longhorn.io", "volumeHandle": handle}, "storageClassName": "longhorn"}}


def _pvc(namespace, name, volume_name=None, phase="Bound"):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"volumeName": volume_name}, "status": {"phase": phase}}


class FakeAccess:
    def __init__(self, volumes=(), pvs=(), pvcs=(), backup_volumes=(), namespaces=("apps",), check_mode=False):
        self.objects = {"Volume": list(volumes), "PersistentVolume": list(pvs), "PersistentVolumeClaim": list(pvcs),
                        "BackupVolume": list(backup_volumes)}
        self.namespaces = set(namespaces)
        self.check_mode = check_mode
        self.created = []

    def list(self, kind, _api_version, namespace=None):
        return copy.deepcopy(self.objects[kind])

    def get(self, kind, _api_version, name, namespace=None):
        assert kind == "Namespace"
        return {"metadata": {"name": name}} if name in self.namespaces else None

    def create(self, kind, _api_version, body, namespace=None):
        if kind == "PersistentVolumeClaim" and body["metadata"]["namespace"] not in self.namespaces:
            raise LonghornError("namespaces %s not found" % body["metadata"]["namespace"])
        self.created.append((kind, body["metadata"]["name"], self.check_mode))
        if not self.check_mode and kind == "Namespace":
            self.namespaces.add(body["metadata"]["name"])
        return body


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = dict(volumes=None, cluster_state_manifest=None, mapping=None, storage_class="longhorn-static", fs_type="ext4",
                           create_namespaces=False, replace_empty=False, replace_empty_max_bytes=0, namespace=NS, wait=False,
                           wait_timeout=10, wait_sleep=1)
        self.params.update(params)
        self.check_mode = check_mode


def _run(access, **params):
    module = FakeModule(check_mode=access.check_mode, **params)
    entries, work, replacements = module_under_test.plan(module.params, access)
    module_under_test.replace_claims(module, access, entries, work, replacements)
    created_namespaces = module_under_test.ensure_namespaces(module, access, entries, work)
    module_under_test.create_all(module, access, entries, work, created_namespaces)
    return entries, work, created_namespaces


def test_pv_and_claim_shaped_as_longhorn_makes_them():
    access = FakeAccess(volumes=[_volume("vol-a", ("apps", "data"), mode="rwx")],
                        backup_volumes=[{"metadata": {"name": "vol-a-1"}, "spec": {"volumeName": "vol-a"}, "status": {"storageClassName": "longhorn"}}])
    entries, work, _ns = _run(access)
    assert entries["vol-a"]["state"] == "Created" and entries["vol-a"]["source"] == "kubernetes_status"
    pv, pvc = work["vol-a"]
    assert pv["spec"] == {
        "capacity": {"storage": "67108864"}, "accessModes": ["ReadWriteMany"], "volumeMode": "Filesystem",
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "longhorn",
        "csi": {"driver": "driver.longhorn.io", "volumeHandle": "vol-a", "fsType": "ext4",
                "volumeAttributes": {"numberOfReplicas": "2", "staleReplicaTimeout": "30"}},
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "apps", "name": "data"}}
    assert pvc["metadata"] == {"name": "data", "namespace": "apps"}
    assert pvc["spec"]["volumeName"] == "vol-a" and pvc["spec"]["resources"]["requests"]["storage"] == "67108864"
    assert pvc["spec"]["storageClassName"] == "longhorn" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_mapping_sources_in_order(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format": pvv.MANIFEST_FORMAT, "volumes": [
        {"volume": "vol-b", "pvc_namespace": "apps", "pvc_name": "from-manifest", "pv_name": "pv-b", "storage_class": "fast"},
        {"volume": "vol-a", "pvc_namespace": "apps", "pvc_name": "ignored"}]}))
    access = FakeAccess(volumes=[_volume("vol-a", ("apps", "from-status")), _volume("vol-b"), _volume("vol-c")])
    entries, work, _ns = _run(access, cluster_state_manifest=str(manifest),
                              mapping=[{"volume": "vol-c", "namespace": "apps", "pvc_name": "from-mapping", "storage_class": None},
                                       {"volume": "vol-a", "namespace": "apps", "pvc_name": "ignored-too", "storage_class": None}])
    assert [(entries[v]["pvc_name"], entries[v]["source"]) for v in ("vol-a", "vol-b", "vol-c")] == [
        ("from-status", "kubernetes_status"), ("from-manifest", "manifest"), ("from-mapping", "mapping")]
    assert entries["vol-b"]["pv_name"] == "pv-b" and entries["vol-b"]["storage_class"] == "fast"
    assert entries["vol-c"]["storage_class"] == "longhorn-static"
    assert work["vol-b"][1]["spec"]["volumeName"] == "pv-b"


def test_conflicts_name_both_volumes_and_write_nothing():
    access = FakeAccess(volumes=[_volume("vol-a", ("apps", "data")), _volume("vol-b", ("apps", "other"))],
                        pvs=[_pv("pvc-fresh", "pvc-fresh"), _pv("vol-b", "someone-else")],
                        pvcs=[_pvc("apps", "data", "pvc-fresh")])
    entries, work, _ns = _run(access, volumes=["vol-a", "vol-b"])
    assert entries["vol-a"]["error"] == "PVC apps/data is bound to PV pvc-fresh, not to PV vol-a (volume pvc-fresh, not volume vol-a)"
    assert entries["vol-b"]["error"] == "PV vol-b exists for volume someone-else"
    assert work == {} and access.created == []


def test_already_bound_is_left_alone_and_restoring_or_unmapped_volumes_fail():
    access = FakeAccess(volumes=[_volume("vol-a", ("apps", "data")), _volume("vol-b", ("apps", "b"), restoring=True), _volume("vol-c")],
                        pvs=[_pv("vol-a", "vol-a")], pvcs=[_pvc("apps", "data", "vol-a")])
    entries, work, _ns = _run(access, volumes=["vol-a", "vol-b", "vol-c", "ghost"])
    assert entries["vol-a"]["state"] == "Bound" and work == {}
    assert "still restoring" in entries["vol-b"]["error"]
    assert "no claim known for volume vol-c" in entries["vol-c"]["error"]
    assert entries["ghost"]["error"] == "Longhorn volume ghost does not exist"


def test_default_selection_is_volumes_without_a_pv():
    access = FakeAccess(volumes=[_volume("vol-a", ("apps", "a")), _volume("vol-b", ("apps", "b"))], pvs=[_pv("vol-a", "vol-a")],
                        pvcs=[_pvc("apps", "a", "vol-a")])
    entries, _work, _ns = _run(access)
    assert list(entries) == ["vol-b"]


@pytest.mark.parametrize("create, check_mode", [(False, False), (True, False), (True, True)])
def test_missing_namespaces(create, check_mode):
    access = FakeAccess(volumes=[_volume("vol-a", ("new-ns", "data"))], namespaces=(), check_mode=check_mode)
    entries, _work, created = _run(access, create_namespaces=create)
    if not create:
        assert entries["vol-a"]["error"] == "namespace new-ns does not exist (set create_namespaces=true to create it)"
        assert access.created == []
    else:
        assert created == ["new-ns"] and entries["vol-a"]["state"] == ("Planned" if check_mode else "Created")
        kinds = [c[0] for c in access.created]
        assert kinds == (["Namespace", "PersistentVolume"] if check_mode else ["Namespace", "PersistentVolume", "PersistentVolumeClaim"])


@pytest.mark.parametrize("text, message", [
    ("{", "is not JSON"),
    (json.dumps({"format": "other"}), "is not a cluster-state manifest (format 'other'"),
])
def test_bad_manifest_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(LonghornError, match=re.escape(message)):
        module_under_test.read_manifest(str(path))
    with pytest.raises(LonghornError, match="Cannot read cluster_state_manifest"):
        module_under_test.read_manifest(str(tmp_path / "missing.json"))


# ---- replace_empty -------------------------------------------------------------------------------


def _fresh(created="2026-01-02T00:00:00Z", last_backup=None):
    return {"metadata": {"name": "pvc-fresh", "creationTimestamp": created}, "status": {"lastBackup": last_backup, "actualSize": 0}}


RESTORED = {"metadata": {"name": "vol-a", "annotations": {"longhorn-dr.homelab/restored-from": "s3://b@r/?backup=backup-1&volume=vol-a"}}}
BACKUPS = {"backup-1": {"status": {"snapshotCreatedAt": "2026-01-01T00:00:00Z"}}}


@pytest.mark.parametrize("fresh, backups, reason", [
    (_fresh(), BACKUPS, None),
    (_fresh(created="2025-12-31T00:00:00Z"), BACKUPS, "was created 2025-12-31T00:00:00Z, not after the backup was taken (2026-01-01T00:00:00Z)"),
    (_fresh(last_backup="backup-9"), BACKUPS, "has a backup of its own"),
    (_fresh(), {}, "the time of the backup volume vol-a was restored from is unknown"),
    (None, BACKUPS, "not a Longhorn volume of this cluster"),
])
def test_replace_refusal(fresh, backups, reason):
    refusal = pvv.replace_refusal(fresh, RESTORED, backups)
    assert (refusal is None) if reason is None else (reason in refusal), refusal


def test_claim_users_finds_the_pods_that_mount_the_claim():
    pods = [{"metadata": {"name": "a"}, "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}},
            {"metadata": {"name": "b"}, "spec": {"volumes": [{"name": "c", "configMap": {"name": "x"}}]}}]
    assert [p["metadata"]["name"] for p in pvv.claim_users(pods, "data")] == ["a"]


def test_plan_refuses_replacement_of_a_claim_on_an_old_volume():
    fresh = dict(_fresh(created="2025-12-31T00:00:00Z"), spec={})
    restored = dict(_volume("vol-a", ("apps", "data")), metadata=dict(RESTORED["metadata"]))
    access = FakeAccess(volumes=[restored, fresh], pvs=[_pv("pvc-fresh", "pvc-fresh")], pvcs=[_pvc("apps", "data", "pvc-fresh")])
    access.objects["Backup"] = [dict(BACKUPS["backup-1"], metadata={"name": "backup-1"})]
    entries, work, _ns = _run(access, volumes=["vol-a"], replace_empty=True)
    assert "replace_empty refused: volume pvc-fresh was created 2025-12-31T00:00:00Z" in entries["vol-a"]["error"]
    assert work == {} and access.created == []


def test_a_run_cut_off_after_the_pv_finds_the_claim_in_its_claim_ref():
    pv = _pv("vol-a", "vol-a")
    pv["spec"]["claimRef"] = {"namespace": "apps", "name": "data"}
    # Longhorn cleared kubernetesStatus when the PV appeared (ref §1.5).
    access = FakeAccess(volumes=[_volume("vol-a")], pvs=[pv])
    entries, work, _ns = _run(access, volumes=["vol-a"])
    assert (entries["vol-a"]["pvc_namespace"], entries["vol-a"]["pvc_name"], entries["vol-a"]["source"]) == ("apps", "data", "pv_claim_ref")
    assert work["vol-a"][0] is None and work["vol-a"][1]["spec"]["volumeName"] == "vol-a"


def _retry_volume(name, target, attempt, claim=None):
    from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _volume_restore as vr
    volume = _volume(name, claim)
    volume["metadata"]["annotations"] = {vr.RETRY_OF_ANNOTATION: target, vr.RETRY_ANNOTATION: str(attempt)}
    return volume


def test_a_retry_volume_gets_the_pv_and_claim_of_the_volume_it_stands_in_for(tmp_path):
    """longhorn_volume_restore retried vol-a's failed restore in vol-a-retry-1: the PV and claim keep vol-a's names."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format": pvv.MANIFEST_FORMAT, "volumes": [
        {"volume": "vol-b", "pvc_namespace": "apps", "pvc_name": "b-claim", "pv_name": "pv-b", "storage_class": "fast"}]}))
    failed = _volume("vol-a", ("apps", "data"))
    failed["status"].update(robustness="faulted", restoreRequired=True,
                            conditions=[{"type": "Restore", "status": "False", "reason": "RestoreFailure", "message": "All replica restore failed"}])
    access = FakeAccess(volumes=[failed, _retry_volume("vol-a-retry-1", "vol-a", 1, ("apps", "data")), _retry_volume("vol-b-retry-2", "vol-b", 2),
                                 _retry_volume("vol-c-retry-1", "vol-c", 7)],
                        backup_volumes=[{"metadata": {"name": "vol-a-1"}, "spec": {"volumeName": "vol-a"}, "status": {"storageClassName": "longhorn"}}])
    entries, work, _ns = _run(access, cluster_state_manifest=str(manifest), volumes=["vol-a", "vol-a-retry-1", "vol-b-retry-2", "vol-c-retry-1"])
    assert (entries["vol-a-retry-1"]["pv_name"], entries["vol-a-retry-1"]["pvc_name"], entries["vol-a-retry-1"]["storage_class"]) == (
        "vol-a", "data", "longhorn")
    pv, pvc = work["vol-a-retry-1"]
    assert pv["metadata"]["name"] == "vol-a" and pv["spec"]["csi"]["volumeHandle"] == "vol-a-retry-1" and pvc["spec"]["volumeName"] == "vol-a"
    # The manifest entry of the planned volume applies to its retry.
    assert (entries["vol-b-retry-2"]["pv_name"], entries["vol-b-retry-2"]["pvc_name"], entries["vol-b-retry-2"]["source"]) == (
        "pv-b", "b-claim", "manifest")
    # An annotation that does not match the name is not ours: the volume stands only for itself.
    assert entries["vol-c-retry-1"]["state"] == "Failed" and "no claim known for volume vol-c-retry-1" in entries["vol-c-retry-1"]["error"]
    # The failed volume itself gets nothing, and says why.
    assert entries["vol-a"]["state"] == "Failed" and "the restore of volume vol-a failed" in entries["vol-a"]["error"]
