# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_volume_restore and _volume_restore with a fake cluster."""

from __future__ import annotations

import copy
import json
import re

import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _volume_restore as vr
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_volume_restore as module_under_test

NS = "longhorn-system"
TARGET = "s3://bucket@us-east-1/"


def _url(backup, volume):
    return "%s?backup=%s&volume=%s" % (TARGET, backup, volume)


def _backup(name, volume, state="Completed", created="2026-01-01T02:00:00Z", claim=None, mode="rwo", size="67108864"):
    labels = {vr.ACCESS_MODE_LABEL: mode}
    if claim:
        labels["KubernetesStatus"] = json.dumps({"namespace": claim[0], "pvcName": claim[1], "pvName": "pv-" + volume})
    return {"metadata": {"name": name, "labels": {"backup-volume": volume, "backup-target": "default"}},
            "status": {"state": state, "backupCreatedAt": created, "url": _url(name, volume), "volumeSize": size,
                       "labels": labels, "volumeName": volume}}


def _backup_volume(volume, last, claim=None):
    labels = {"KubernetesStatus": json.dumps({"namespace": claim[0], "pvcName": claim[1]})} if claim else {}
    return {"metadata": {"name": volume + "-0fbc591a", "labels": {"backup-volume": volume, "backup-target": "default"}},
            "spec": {"backupTargetName": "default", "volumeName": volume},
            "status": {"lastBackupName": last, "labels": labels}}


class FakeAccess:
    """Lists from a dict of kind -> {name: object}; created volumes follow ``script`` (a list of status dicts per poll)."""

    def __init__(self, objects, check_mode=False, script=None, create_errors=None):
        self.objects = copy.deepcopy(objects)
        self.check_mode = check_mode
        self.script = script or {}
        self.create_errors = create_errors or {}
        self.created = []

    def list(self, kind, _api_version, namespace=None):
        assert namespace == NS
        if kind == "Volume":
            for name, steps in self.script.items():
                if name in self.objects["Volume"] and steps:
                    self.objects["Volume"][name]["status"] = steps.pop(0)
        return [copy.deepcopy(o) for _n, o in sorted(self.objects.get(kind, {}).items())]

    def create(self, kind, _api_version, body, namespace=None):
        name = body["metadata"]["name"]
        if name in self.create_errors:
            raise LonghornError(self.create_errors[name])
        self.created.append((name, self.check_mode))
        if not self.check_mode:
            self.objects.setdefault(kind, {})[name] = copy.deepcopy(body)
        return body


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = dict(volumes=None, namespaces=None, all_volumes=False, backup=None, restore_as=None, overrides=None,
                           retry_failed=True, delete_untouched_failed=False, recreate_failed=None, backup_target="default",
                           number_of_replicas=None, data_engine="v1", stale_replica_timeout=2880, concurrency=5,
                           namespace=NS, wait=True, wait_timeout=100, wait_sleep=1)
        self.params.update(params)
        self.check_mode = check_mode


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


DONE = {"state": "detached", "restoreRequired": False, "restoreInitiated": True, "robustness": "healthy"}
RESTORING = {"state": "attached", "restoreRequired": True, "restoreInitiated": True, "robustness": "healthy"}
FAILED = {"state": "attached", "restoreRequired": True, "restoreInitiated": True, "robustness": "faulted",
          "conditions": [{"type": "Restore", "status": "False", "reason": "RestoreFailure", "message": "block checksum mismatch"}]}


def _cluster():
    return {
        "BackupVolume": {"vol-a": _backup_volume("vol-a", "backup-a2", ("apps", "a")), "vol-b": _backup_volume("vol-b", "backup-b1", ("db", "b"))},
        "Backup": {
            "backup-a1": _backup("backup-a1", "vol-a", created="2026-01-01T01:00:00Z", claim=("apps", "a")),
            "backup-a2": _backup("backup-a2", "vol-a", created="2026-01-01T02:00:00Z", claim=("apps", "a"), mode="rwx", size="134217728"),
            "backup-b1": _backup("backup-b1", "vol-b", claim=("db", "b")),
        },
        "Volume": {},
    }


def _run(access, clock=None, **params):
    clock = clock or Clock()
    module = FakeModule(check_mode=access.check_mode, **params)
    module_under_test.check_params(module.params)
    entries, bodies = module_under_test.plan(module.params, access, 1767232800.0)  # 2026-01-01T02:00:00Z
    module_under_test.run_restores(module, access, entries, bodies, clock=clock, sleep=clock.sleep)
    return entries, bodies


def test_namespaces_select_by_the_original_pvc_and_latest_backup_is_used():
    access = FakeAccess(_cluster(), script={"vol-a": [RESTORING, DONE]})
    entries, bodies = _run(access, namespaces=["apps"])
    assert list(entries) == ["vol-a"]
    entry = entries["vol-a"]
    assert entry["state"] == "Restored" and entry["backup"] == "backup-a2" and entry["rpo_seconds"] == 0
    assert (entry["pvc_namespace"], entry["pvc_name"], entry["access_mode"], entry["size"]) == ("apps", "a", "rwx", 134217728)
    spec = bodies["vol-a"]["spec"]
    assert spec == {"fromBackup": _url("backup-a2", "vol-a"), "frontend": "blockdev", "accessMode": "rwx", "dataEngine": "v1",
                    "staleReplicaTimeout": 2880, "size": "134217728"}
    assert bodies["vol-a"]["metadata"]["annotations"] == {vr.RESTORED_FROM_ANNOTATION: _url("backup-a2", "vol-a")}


def test_an_unknown_namespace_is_called_unknown_and_nothing_is_created():
    """Issue 10 finding 6: namespaces=[apps, typo] used to restore apps and say nothing of the typo."""
    access = FakeAccess(_cluster())
    with pytest.raises(LonghornError, match=r"namespaces: unknown namespace 'apsp': no backup volume in BackupTarget default "
                                            r"belongs to a PVC in it \(known: apps, db\)"):
        _run(access, namespaces=["apps", "apsp"])
    assert access.created == []


def test_named_backup_and_replicas():
    access = FakeAccess(_cluster(), script={"vol-a": [DONE]})
    entries, bodies = _run(access, volumes=["vol-a"], backup="backup-a1", number_of_replicas=2)
    assert entries["vol-a"]["backup"] == "backup-a1" and entries["vol-a"]["rpo_seconds"] == 3600
    assert bodies["vol-a"]["spec"]["numberOfReplicas"] == 2


def test_restore_as_creates_a_new_name_and_leaves_the_original_alone():
    cluster = _cluster()
    cluster["Volume"] = {"vol-a": {"metadata": {"name": "vol-a"}, "spec": {}, "status": DONE}}
    access = FakeAccess(cluster, script={"vol-a-restored": [DONE]})
    entries, bodies = _run(access, volumes=["vol-a"], restore_as="vol-a-restored")
    assert list(entries) == ["vol-a-restored"] and entries["vol-a-restored"]["source_volume"] == "vol-a"
    assert entries["vol-a-restored"]["state"] == "Restored"
    assert bodies["vol-a-restored"]["spec"]["fromBackup"] == _url("backup-a2", "vol-a")
    assert access.created == [("vol-a-restored", False)]
    # A re-run recognises its own volume.
    entries, bodies = _run(access, volumes=["vol-a"], restore_as="vol-a-restored")
    assert entries["vol-a-restored"]["state"] == "AlreadyRestored" and bodies == {}


def test_overrides_choose_backup_name_and_replicas_per_volume():
    access = FakeAccess(_cluster(), script={"a-copy": [DONE], "b-copy": [DONE]})
    entries, bodies = _run(access, volumes=["vol-a", "vol-b"], overrides={
        "vol-a": {"restore_as": "a-copy", "backup": "backup-a1", "number_of_replicas": 2},
        "vol-b": {"restore_as": "b-copy"}})
    assert sorted(entries) == ["a-copy", "b-copy"] and {e["state"] for e in entries.values()} == {"Restored"}
    assert entries["a-copy"]["backup"] == "backup-a1" and bodies["a-copy"]["spec"]["numberOfReplicas"] == 2
    assert entries["b-copy"]["backup"] == "backup-b1" and "numberOfReplicas" not in bodies["b-copy"]["spec"]


@pytest.mark.parametrize("params, message", [
    ({"volumes": ["vol-a"], "overrides": {"vol-b": {"restore_as": "x"}}}, "overrides name volumes that are not chosen: vol-b"),
    ({"all_volumes": True, "overrides": {"vol-a": {"restore_as": "vol-b"}}}, "restored under the same name: vol-b"),
])
def test_bad_overrides_against_the_selection(params, message):
    with pytest.raises(LonghornError, match=message):
        _run(FakeAccess(_cluster()), **params)


def test_check_mode_creates_dry_runs_only_and_does_not_wait():
    access = FakeAccess(_cluster(), check_mode=True)
    entries, _bodies = _run(access, all_volumes=True)
    assert {e["state"] for e in entries.values()} == {"Planned"}
    assert access.created == [("vol-a", True), ("vol-b", True)] and access.objects["Volume"] == {}


def test_a_restored_volume_is_skipped_and_another_origin_is_a_conflict():
    cluster = _cluster()
    cluster["Volume"] = {
        "vol-a": {"metadata": {"name": "vol-a", "annotations": {vr.RESTORED_FROM_ANNOTATION: _url("backup-a2", "vol-a")}}, "status": DONE},
        "vol-b": {"metadata": {"name": "vol-b"}, "spec": {}, "status": DONE},
    }
    access = FakeAccess(cluster)
    entries, bodies = _run(access, all_volumes=True)
    assert entries["vol-a"]["state"] == "AlreadyRestored" and "created" not in entries["vol-a"]
    assert entries["vol-b"]["state"] == "Failed" and "was not restored from a backup" in entries["vol-b"]["error"]
    assert bodies == {} and access.created == []


def test_a_system_restored_volume_counts_as_restored_from_its_backup():
    cluster = _cluster()
    cluster["Volume"] = {"vol-b": {"metadata": {"name": "vol-b", "annotations": {vr.SYSTEM_RESTORED_BACKUP_ANNOTATION: _url("backup-b1", "vol-b")}},
                                   "status": DONE}}
    entries, _bodies = _run(FakeAccess(cluster), volumes=["vol-b"])
    assert entries["vol-b"]["state"] == "AlreadyRestored"


def test_concurrency_is_bounded_and_failures_are_per_volume():
    access = FakeAccess(_cluster(), script={"vol-a": [RESTORING, FAILED], "vol-b": [RESTORING, DONE]})
    created_while_active = []
    original = access.create

    def create(kind, api_version, body, namespace=None):
        created_while_active.append([n for n, v in access.objects.get("Volume", {}).items()
                                     if vr.restore_outcome(v)[0] == "Restoring"])
        return original(kind, api_version, body, namespace=namespace)
    access.create = create
    entries, _bodies = _run(access, all_volumes=True, concurrency=1)
    assert created_while_active == [[], []], "the second volume started while the first was restoring"
    assert entries["vol-a"]["state"] == "Failed" and "block checksum mismatch" in entries["vol-a"]["error"]
    assert entries["vol-b"]["state"] == "Restored"


def test_timeout_fails_what_is_still_restoring():
    access = FakeAccess(_cluster(), script={"vol-a": [RESTORING] * 100})
    entries, _bodies = _run(access, volumes=["vol-a"], wait_timeout=3)
    assert entries["vol-a"]["state"] == "Failed" and entries["vol-a"]["error"].startswith("timed out after 3s")


def test_unknown_volume_and_unsynced_backup_are_reported_not_raised():
    cluster = _cluster()
    cluster["Backup"]["backup-b1"]["status"]["state"] = "Pending"
    entries, bodies = _run(FakeAccess(cluster), volumes=["vol-b", "ghost"])
    assert "ghost has no backups in BackupTarget default (known: vol-a, vol-b)" in entries["ghost"]["error"]
    assert "no Completed backup" in entries["vol-b"]["error"]
    assert bodies == {}


@pytest.mark.parametrize("params, message", [
    ({}, "exactly one of volumes, namespaces or all_volumes=true \\(got volumes=None, namespaces=None, all_volumes=False\\)"),
    ({"volumes": ["a"], "all_volumes": True}, "exactly one of"),
    ({"volumes": ["a", "b"], "backup": "backup-x"}, "backup=backup-x is for one volume"),
    ({"all_volumes": True, "restore_as": "copy"}, "restore_as=copy is for one volume, so volumes must list exactly one volume"),
    ({"volumes": ["a"], "backup": "b", "overrides": {"a": {}}}, "do not combine it with backup \\(got 'b'\\) or restore_as \\(got None\\)"),
    ({"volumes": ["a"], "overrides": {"a": {"size": 1}}}, "overrides\\[a\\] must be a dict with only backup, number_of_replicas, restore_as"),
    ({"volumes": ["a"], "overrides": {"a": {"number_of_replicas": 0}}}, "overrides\\[a\\].number_of_replicas must be at least 1, got 0"),
    ({"all_volumes": True, "concurrency": 0}, "concurrency must be at least 1, got 0"),
    ({"all_volumes": True, "number_of_replicas": 0}, "number_of_replicas must be at least 1, got 0"),
])
def test_bad_parameters_name_the_value(params, message):
    with pytest.raises(LonghornError, match=message):
        module_under_test.check_params(FakeModule(**params).params)


def test_restore_outcome_needs_restore_initiated():
    assert vr.restore_outcome({"status": {"state": "detached", "restoreRequired": False, "restoreInitiated": False}})[0] == "Restoring"
    assert vr.restore_outcome({"status": DONE}) == ("Restored", None)
    assert vr.restore_outcome({"status": FAILED}) == ("Failed", "block checksum mismatch")


def test_legacy_backup_volume_name_and_missing_labels():
    legacy = {"metadata": {"name": "vol-x"}, "spec": {}}
    assert vr.original_volume_name(legacy) == "vol-x"
    assert vr.kubernetes_status({"KubernetesStatus": "not json"}) == {}
    assert vr.access_mode({"status": {}}) == "rwo"


class DeletingAccess(FakeAccess):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deleted = []

    def get(self, kind, _api_version, name, namespace=None):
        return self.objects.get(kind, {}).get(name)

    def delete(self, kind, _api_version, name, namespace=None):
        self.deleted.append(name)
        self.objects[kind].pop(name, None)


# ---- a failed restore: retried into a fresh volume, the failed one kept (issue 10, finding 3) ----------

FAILED_DETACHED = dict(FAILED, state="detached", currentNodeID="", actualSize=1048576, remountRequestedAt="",
                       kubernetesStatus={"pvName": "", "pvStatus": "", "namespace": "db", "pvcName": "b",
                                         "lastPVCRefAt": "2026-01-01T02:00:00Z", "lastPodRefAt": ""})
RESTORE_TICKET = {"volume-restore-controller-vol-b": {"id": "volume-restore-controller-vol-b", "type": "volume-restore-controller"}}


class EvidenceAccess(DeletingAccess):
    """Also answers what delete_untouched_failed reads: PVs, VolumeAttachments and Snapshots (by label)."""

    def list(self, kind, _api_version, namespace=None, label_selector=None):
        if kind == "PersistentVolume":
            return [copy.deepcopy(o) for o in self.objects.get(kind, {}).values()]
        if kind == "Snapshot":
            volume = label_selector.split("=", 1)[1]
            return [copy.deepcopy(o) for o in self.objects.get(kind, {}).values() if o["metadata"]["labels"]["longhornvolume"] == volume]
        return super().list(kind, _api_version, namespace=namespace)

    def delete(self, kind, _api_version, name, namespace=None):
        assert not self.check_mode
        super().delete(kind, _api_version, name, namespace=namespace)


def _failed_cluster(status=None, **volumes):
    """vol-b's restore from backup-b1 failed; ``volumes`` adds more Volumes by name."""
    cluster = _cluster()
    cluster["Backup"]["backup-b1"]["status"]["size"] = "2097152"
    cluster["Volume"] = {"vol-b": {"metadata": {"name": "vol-b", "creationTimestamp": "2026-01-02T00:00:00Z",
                                                "annotations": {vr.RESTORED_FROM_ANNOTATION: _url("backup-b1", "vol-b")}},
                                   "spec": {"fromBackup": _url("backup-b1", "vol-b")}, "status": copy.deepcopy(status or FAILED_DETACHED)}}
    for name, value in volumes.items():
        cluster["Volume"][name] = value
    cluster["VolumeAttachment"] = {"vol-b": {"metadata": {"name": "vol-b"}, "spec": {"attachmentTickets": copy.deepcopy(RESTORE_TICKET)}}}
    cluster["PersistentVolume"] = {}
    cluster["Snapshot"] = {}
    return cluster


def _retry(attempt, status, backup="backup-b1", target="vol-b"):
    name = vr.retry_volume_name(target, attempt)
    return {"metadata": {"name": name, "annotations": {vr.RESTORED_FROM_ANNOTATION: _url(backup, "vol-b"), vr.RETRY_OF_ANNOTATION: target,
                                                       vr.RETRY_ANNOTATION: str(attempt)}},
            "spec": {"fromBackup": _url(backup, "vol-b")}, "status": copy.deepcopy(status)}


def test_retry_names_are_deterministic_valid_and_fit_longhorns_40_characters():
    assert vr.retry_volume_name("vol-b", 1) == "vol-b-retry-1"
    pvc = "pvc-0123abcd-4567-89ab-cdef-0123456789ab"
    twin = "pvc-0123abcd-4567-89ab-cdef-ffffffffffff"
    assert len(pvc) == vr.MAX_VOLUME_NAME
    for attempt in (1, 9, 10, 999):
        name = vr.retry_volume_name(pvc, attempt)
        assert len(name) <= vr.MAX_VOLUME_NAME and name.endswith("-retry-%d" % attempt), name
        assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name), name  # a DNS-1123 label: lm datastore/longhorn.go CheckVolume
        assert name == vr.retry_volume_name(pvc, attempt) and name.startswith("pvc-0123abcd-4567-89")
        assert name != vr.retry_volume_name(twin, attempt)
    assert vr.retry_volume_name("a" * 32, 1) == "a" * 32 + "-retry-1"  # exactly 40 is allowed (CheckVolume refuses > 40)
    assert "--" not in vr.retry_volume_name("a" * 22 + "-" + "b" * 17, 1)  # cut right after a dash: no "--"


def test_a_failed_restore_is_retried_into_a_fresh_volume_and_the_failed_one_is_kept():
    access = EvidenceAccess(_failed_cluster(), script={"vol-b-retry-1": [RESTORING, DONE]})
    entries, bodies = _run(access, volumes=["vol-b"])
    entry = entries["vol-b"]
    assert access.deleted == [] and "vol-b" in access.objects["Volume"]
    assert (entry["state"], entry["volume"], entry["planned_volume"]) == ("Restored", "vol-b-retry-1", "vol-b"), entry
    assert bodies["vol-b"]["metadata"]["annotations"] == {vr.RESTORED_FROM_ANNOTATION: _url("backup-b1", "vol-b"),
                                                          vr.RETRY_OF_ANNOTATION: "vol-b", vr.RETRY_ANNOTATION: "1"}
    assert bodies["vol-b"]["spec"]["fromBackup"] == _url("backup-b1", "vol-b")
    assert entry["kept_failed_volumes"] == [{"volume": "vol-b", "planned_volume": "vol-b", "backup": "backup-b1",
                                             "delete_command": "kubectl -n longhorn-system delete volumes.longhorn.io vol-b",
                                             "reason": module_under_test.KEPT_REASON}]
    assert entry["deleted_failed_volumes"] == []


@pytest.mark.parametrize("retry_status", [DONE, RESTORING], ids=["restored", "killed-while-restoring"])
def test_a_rerun_takes_the_retry_volume_as_it_is(retry_status):
    """After success, or after a kill -9 while the retry restores: no second retry volume, nothing deleted."""
    access = EvidenceAccess(_failed_cluster(**{"vol-b-retry-1": _retry(1, retry_status)}), script={"vol-b-retry-1": [retry_status, DONE]})
    entries, bodies = _run(access, volumes=["vol-b"])
    assert bodies == {} and access.created == [] and access.deleted == []
    assert (entries["vol-b"]["state"], entries["vol-b"]["volume"]) == ("AlreadyRestored", "vol-b-retry-1")
    assert [k["volume"] for k in entries["vol-b"]["kept_failed_volumes"]] == ["vol-b"]


def test_a_failed_retry_is_kept_too_and_the_next_attempt_gets_the_next_number():
    access = EvidenceAccess(_failed_cluster(**{"vol-b-retry-1": _retry(1, FAILED_DETACHED)}), script={"vol-b-retry-2": [DONE]})
    entries, _bodies = _run(access, volumes=["vol-b"])
    assert access.created == [("vol-b-retry-2", False)] and access.deleted == []
    assert [k["volume"] for k in entries["vol-b"]["kept_failed_volumes"]] == ["vol-b", "vol-b-retry-1"]


def test_a_volume_of_the_retry_name_that_is_not_ours_is_skipped():
    stranger = {"metadata": {"name": "vol-b-retry-1"}, "spec": {}, "status": DONE}
    access = EvidenceAccess(_failed_cluster(**{"vol-b-retry-1": stranger}), script={"vol-b-retry-2": [DONE]})
    entries, _bodies = _run(access, volumes=["vol-b"])
    assert access.created == [("vol-b-retry-2", False)] and entries["vol-b"]["volume"] == "vol-b-retry-2"


def test_a_retry_from_another_backup_is_a_conflict():
    access = EvidenceAccess(_failed_cluster(**{"vol-b-retry-1": _retry(1, DONE, backup="backup-old")}))
    entries, _bodies = _run(access, volumes=["vol-b"])
    assert entries["vol-b"]["state"] == "Failed" and "vol-b-retry-1 already exists" in entries["vol-b"]["error"]
    assert access.created == [] and access.deleted == []


@pytest.mark.parametrize("params, claimed, hint", [
    ({"retry_failed": False}, False, "retry_failed=true restores it again"),
    ({}, True, "PV vol-b uses it, so it is not retried"),
])
def test_no_retry_when_turned_off_or_a_pv_uses_the_failed_volume(params, claimed, hint):
    status = copy.deepcopy(FAILED_DETACHED)
    status["kubernetesStatus"]["pvName"] = "vol-b" if claimed else ""
    access = EvidenceAccess(_failed_cluster(status), script={"vol-b": [status]})
    entries, bodies = _run(access, volumes=["vol-b"], **params)
    assert bodies == {} and access.created == [] and access.deleted == []
    assert entries["vol-b"]["state"] == "Failed" and hint in entries["vol-b"]["error"], entries["vol-b"]["error"]


def test_check_mode_plans_the_retry_and_writes_nothing():
    access = EvidenceAccess(_failed_cluster(), check_mode=True)
    entries, _bodies = _run(access, volumes=["vol-b"])
    assert access.created == [("vol-b-retry-1", True)] and access.deleted == []
    assert entries["vol-b"]["state"] == "Planned" and entries["vol-b"]["volume"] == "vol-b-retry-1"


# ---- delete_untouched_failed: only a volume proven untouched ------------------------------------------

def test_opt_in_deletes_a_proven_untouched_volume_and_restores_under_the_planned_name():
    # The plan's own list sees the failed volume; the new one restores.
    access = EvidenceAccess(_failed_cluster(), script={"vol-b": [FAILED_DETACHED, RESTORING, DONE]})
    entries, bodies = _run(access, volumes=["vol-b"], delete_untouched_failed=True)
    assert access.deleted == ["vol-b"] and access.created == [("vol-b", False)]
    assert bodies["vol-b"]["metadata"]["annotations"] == {vr.RESTORED_FROM_ANNOTATION: _url("backup-b1", "vol-b")}
    entry = entries["vol-b"]
    assert (entry["state"], entry["volume"], entry["deleted_failed_volumes"], entry["kept_failed_volumes"]) == ("Restored", "vol-b", ["vol-b"], [])


def test_opt_in_in_check_mode_deletes_nothing():
    access = EvidenceAccess(_failed_cluster(), check_mode=True)
    entries, _bodies = _run(access, volumes=["vol-b"], delete_untouched_failed=True)
    assert access.deleted == [] and access.created == [] and entries["vol-b"]["deleted_failed_volumes"] == ["vol-b"]


def _touch_status(**changes):
    def touch(cluster):
        cluster["Volume"]["vol-b"]["status"].update(changes)
    return touch


def _touch_kube(**changes):
    def touch(cluster):
        cluster["Volume"]["vol-b"]["status"]["kubernetesStatus"].update(changes)
    return touch


def _touch(path, value):
    def touch(cluster):
        obj = cluster
        for key in path[:-1]:
            obj = obj[key]
        if value is None:
            obj.pop(path[-1], None)
        else:
            obj[path[-1]] = value
    return touch


UNTOUCHED_BREAKERS = {
    "not ours": (_touch(("Volume", "vol-b", "metadata", "annotations"), {}), "not created by this collection"),
    "salvaged": (_touch_status(robustness="unknown", conditions=[{"type": "Restore", "status": "False", "reason": ""}]),
                 "no longer in the failed-restore state"),
    "restore not required": (_touch_status(restoreRequired=False), "restoreRequired is False"),
    "attached": (_touch_status(state="attached", currentNodeID="node-1"), "attached on node node-1, not detached"),
    "remounted": (_touch_status(remountRequestedAt="2026-01-02T01:00:00Z"), "status.remountRequestedAt"),
    "auto-salvaged": (_touch_status(lastAutoSalvagedAt="2026-01-02T01:00:00Z"), "status.lastAutoSalvagedAt"),
    "no VolumeAttachment": (_touch(("VolumeAttachment", "vol-b"), None), "VolumeAttachment vol-b cannot be read"),
    "another ticket": (_touch(("VolumeAttachment", "vol-b", "spec", "attachmentTickets"),
                              dict(RESTORE_TICKET, **{"x": {"id": "x", "type": "longhorn-api"}})), "x (longhorn-api)"),
    "a PV": (_touch(("PersistentVolume", "mine"), {"metadata": {"name": "mine"}, "spec": {"csi": {"volumeHandle": "vol-b"}}}), "PV mine uses it"),
    "pvName": (_touch_kube(pvName="pv-x"), "PV pv-x uses it"),
    "claim since": (_touch_kube(lastPVCRefAt="2026-01-02T03:00:00Z"), "lastPVCRefAt is 2026-01-02T03:00:00Z"),
    "pod since": (_touch_kube(lastPodRefAt="2026-01-02T03:00:00Z"), "lastPodRefAt is 2026-01-02T03:00:00Z"),
    "user snapshot": (_touch(("Snapshot", "snap-1"), {"metadata": {"name": "snap-1", "labels": {"longhornvolume": "vol-b"}},
                                                      "spec": {"volume": "vol-b"}, "status": {"userCreated": True}}),
                      "snapshots someone took: snap-1"),
    "grown": (_touch_status(actualSize=2097153), "actualSize 2097153 is more than the backup's 2097152"),
    "size unknown": (_touch_status(actualSize=None), "actualSize is unknown"),
    "backup size unknown": (_touch(("Backup", "backup-b1", "status", "size"), None), "size of the backup"),
    "creation unknown": (_touch(("Volume", "vol-b", "metadata", "creationTimestamp"), None), "creationTimestamp is unknown"),
}


def test_the_untouched_fixture_passes_every_check():
    cluster = _failed_cluster()
    volume = cluster["Volume"]["vol-b"]
    assert vr.untouched_refusals(volume, _url("backup-b1", "vol-b"), cluster["Backup"]["backup-b1"], [],
                                 cluster["VolumeAttachment"]["vol-b"], []) == []


@pytest.mark.parametrize("breaker", sorted(UNTOUCHED_BREAKERS))
def test_each_missing_proof_refuses_the_deletion_and_the_retry_still_completes(breaker):
    touch, reason = UNTOUCHED_BREAKERS[breaker]
    cluster = _failed_cluster()
    touch(cluster)
    volume = cluster["Volume"]["vol-b"]
    refusals = vr.untouched_refusals(volume, _url("backup-b1", "vol-b"), cluster["Backup"]["backup-b1"],
                                     list(cluster["PersistentVolume"].values()), cluster["VolumeAttachment"].get("vol-b"),
                                     list(cluster["Snapshot"].values()))
    assert any(reason in r for r in refusals), refusals
    status = volume["status"]
    access = EvidenceAccess(cluster, script={"vol-b": [status, status], "vol-b-retry-1": [DONE]})
    entries, _bodies = _run(access, volumes=["vol-b"], delete_untouched_failed=True)
    entry = entries["vol-b"]
    assert access.deleted == [] and "vol-b" in access.objects["Volume"], breaker
    if breaker == "salvaged":
        # No longer a failed restore at all: the volume is taken as it is, nothing else is created.
        assert access.created == [] and entry["volume"] == "vol-b", entry
        return
    if breaker == "pvName":
        # A PV claims the failed volume: no retry either, it stays failed for a person to look at.
        assert access.created == [] and entry["state"] == "Failed" and "PV pv-x uses it" in entry["error"], entry
        return
    assert access.created == [("vol-b-retry-1", False)] and entry["state"] == "Restored", entry
    (kept,) = entry["kept_failed_volumes"]
    assert kept["volume"] == "vol-b" and kept["reason"].startswith("delete_untouched_failed refused to delete it: "), kept
    assert reason in kept["reason"], kept["reason"]


def test_the_deprecated_recreate_failed_maps_to_the_safe_options():
    for old, retry, delete in ((True, True, True), (False, False, False), (None, True, False)):
        params = {"recreate_failed": old, "retry_failed": True, "delete_untouched_failed": False}
        module_under_test.resolve_recreate_failed(params)
        assert (params["retry_failed"], params["delete_untouched_failed"]) == (retry, delete)
    assert ("recreate_failed", "retry_failed") in module_under_test.MUTUALLY_EXCLUSIVE
    assert ("recreate_failed", "delete_untouched_failed") in module_under_test.MUTUALLY_EXCLUSIVE
