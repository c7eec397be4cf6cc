# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_volume_backup and _volume_backup with a fake Longhorn."""

from __future__ import annotations

import copy
import datetime
import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _volume_backup as vb
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError, WaitTimeout
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_volume_backup as module_under_test

NS = "longhorn-system"
NOW = datetime.datetime(2026, 1, 2, 3, 0, 0, tzinfo=datetime.timezone.utc)


def volume(name, pvc=None, labels=None, **status):
    kstatus = {"pvName": name, "pvStatus": "Bound", "namespace": "apps", "pvcName": pvc, "lastPVCRefAt": "",
               "workloadsStatus": [{"podName": "app-0", "podStatus": "Running", "workloadName": "app", "workloadType": "StatefulSet"}],
               "lastPodRefAt": ""} if pvc else {}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"backupTargetName": "default"},
            "status": dict({"state": "detached", "kubernetesStatus": kstatus}, **status)}


def completed_backup(name, volume_name, when):
    return {"metadata": {"name": name, "labels": {"backup-volume": volume_name}},
            "status": {"state": "Completed", "volumeName": volume_name, "snapshotCreatedAt": when}}


class FakeLonghorn:
    """Volumes, snapshots, backups and targets; wait_for settles them as Longhorn would, one list per round."""

    def __init__(self, volumes, backups=(), target_available=True, failing=(), stuck=(), check_mode=False):
        self.objects = {"Volume": {v["metadata"]["name"]: v for v in volumes},
                        "Backup": {b["metadata"]["name"]: b for b in backups},
                        "Snapshot": {},
                        "BackupTarget": {"default": {"metadata": {"name": "default"}, "status": {
                            "available": target_available,
                            "conditions": [] if target_available else [{"type": "Unavailable", "status": "True", "message": "bad credentials"}]}}}}
        self.failing = set(failing)
        self.stuck = set(stuck)
        self.check_mode = check_mode
        self.writes = []
        self.lists = []
        self.waits = []

    def list(self, kind, _api_version, namespace=None, label_selector=None):
        assert namespace == NS
        self.lists.append((kind, label_selector))
        items = list(self.objects[kind].values())
        if label_selector:
            key, value = label_selector.split("=")
            items = [i for i in items if (i["metadata"].get("labels") or {}).get(key) == value]
        return copy.deepcopy(items)

    def create(self, kind, _api_version, body, namespace=None):
        assert namespace == NS
        self.writes.append((kind, copy.deepcopy(body)))
        self.objects[kind][body["metadata"]["name"]] = copy.deepcopy(body)
        return body

    def _settle(self, kind, name):
        obj = self.objects[kind][name]
        if kind == "Snapshot":
            obj["status"] = {"readyToUse": True}
            return
        volume_name = self.objects["Snapshot"][obj["spec"]["snapshotName"]]["spec"]["volume"]
        if volume_name in self.stuck:
            obj["status"] = {"state": "InProgress"}
        elif volume_name in self.failing:
            obj["status"] = {"state": "Error", "error": "connection reset by peer"}
        else:
            obj["status"] = {"state": "Completed", "url": "s3://b@r/?backup=%s&volume=%s" % (name, volume_name), "size": "2097152"}

    def wait_for(self, kind, _api_version, names, predicate, namespace=None, timeout=600, sleep=2):
        self.waits.append((kind, sorted(names), timeout, sleep))
        for name in names:
            self._settle(kind, name)
        pending = [n for n in names if not predicate(self.objects[kind][n])]
        if pending:
            raise WaitTimeout("timeout", pending=pending, last={n: self.objects[kind][n] for n in pending})
        return {n: copy.deepcopy(self.objects[kind][n]) for n in names}


class FakeModule:
    def __init__(self, check_mode=False, diff=False, **params):
        self.params = dict(namespace=NS, volumes=None, label_selector=None, backup_mode="incremental", labels={}, concurrency=5,
                           max_age=None, wait=True, wait_timeout=60, wait_sleep=1)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def run(fake, **params):
    module = FakeModule(check_mode=params.pop("check_mode", False), diff=params.pop("diff", False), **params)
    return module_under_test.run_module(module, fake, clock=Clock(), now=NOW)


# --- KubernetesStatus label -------------------------------------------------------------------------

def test_kubernetes_status_label_is_go_json_in_struct_order():
    label = vb.kubernetes_status_label(volume("pvc-1", pvc="app-data"))
    assert label == ('{"pvName":"pvc-1","pvStatus":"Bound","namespace":"apps","pvcName":"app-data","lastPVCRefAt":"",'
                     '"workloadsStatus":[{"podName":"app-0","podStatus":"Running","workloadName":"app","workloadType":"StatefulSet"}],'
                     '"lastPodRefAt":""}')


def test_kubernetes_status_label_of_a_volume_without_pvc():
    assert json.loads(vb.kubernetes_status_label(volume("pvc-1"))) == {
        "pvName": "", "pvStatus": "", "namespace": "", "pvcName": "", "lastPVCRefAt": "", "workloadsStatus": None, "lastPodRefAt": ""}


def test_backup_body_carries_the_label_and_mode():
    body = vb.backup_body("backup-0123456789abcdef", "snap", volume("pvc-1", pvc="app-data"), NS, "full", {"team": "db"})
    assert body["spec"]["snapshotName"] == "snap" and body["spec"]["backupMode"] == "full"
    assert body["spec"]["labels"]["team"] == "db"
    assert json.loads(body["spec"]["labels"]["KubernetesStatus"])["pvcName"] == "app-data"


def test_generated_names_are_valid_longhorn_names():
    name = vb.generated_name("backup")
    assert len(name) == len("backup-") + 16 and int(name[7:], 16) >= 0
    assert vb.generated_name("backup") != name


# --- selection -------------------------------------------------------------------------------------

def test_select_all_volumes_sorted():
    assert [v["metadata"]["name"] for v in vb.select_volumes([volume("b"), volume("a")])] == ["a", "b"]


def test_select_named_volumes_keeps_order_without_duplicates():
    selected = vb.select_volumes([volume("a"), volume("b"), volume("c")], ["c", "a", "c"])
    assert [v["metadata"]["name"] for v in selected] == ["c", "a"]


def test_unknown_volume_names_are_an_error_that_writes_nothing():
    fake = FakeLonghorn([volume("a")])
    with pytest.raises(LonghornError, match="No Longhorn volume named nope, gone"):
        run(fake, volumes=["a", "nope", "gone"])
    assert fake.writes == []


def test_label_selector_reaches_the_list():
    fake = FakeLonghorn([volume("a", labels={"tier": "db"}), volume("b")])
    result = run(fake, label_selector="tier=db")
    assert [b["volume"] for b in result["backups"]] == ["a"]
    assert ("Volume", "tier=db") in fake.lists


def test_standby_and_restoring_volumes_are_skipped():
    fake = FakeLonghorn([volume("dr", isStandby=True), volume("restoring", restoreRequired=True), volume("ok")])
    result = run(fake)
    assert [b["volume"] for b in result["backups"]] == ["ok"]
    assert {s["volume"] for s in result["skipped_volumes"]} == {"dr", "restoring"}


# --- backups ---------------------------------------------------------------------------------------

def test_check_mode_writes_nothing_and_reports_the_plan():
    fake = FakeLonghorn([volume("a"), volume("b")])
    result = run(fake, check_mode=True, diff=True)
    assert result["changed"] is True and fake.writes == [] and fake.waits == []
    assert [(b["volume"], b["state"]) for b in result["backups"]] == [("a", "Planned"), ("b", "Planned")]
    assert result["diff"]["after"] == {"backed_up_volumes": ["a", "b"]}


def test_snapshot_then_backup_per_volume_with_results():
    fake = FakeLonghorn([volume("a", pvc="app-data")])
    result = run(fake, backup_mode="full")
    kinds = [kind for kind, _body in fake.writes]
    assert kinds == ["Snapshot", "Backup"]
    snapshot, backup = fake.writes[0][1], fake.writes[1][1]
    assert snapshot["spec"] == {"volume": "a", "createSnapshot": True, "labels": {}}
    assert backup["spec"]["snapshotName"] == snapshot["metadata"]["name"] and backup["spec"]["backupMode"] == "full"
    entry = result["backups"][0]
    assert entry["state"] == "Completed" and entry["backup"] == backup["metadata"]["name"] and entry["size"] == 2097152
    assert entry["url"].endswith("backup=%s&volume=a" % entry["backup"]) and entry["duration"] > 0
    assert result["changed"] is True and result["failed_volumes"] == [] and "msg" not in result


def test_concurrency_bounds_each_batch_and_polls_it_as_one():
    fake = FakeLonghorn([volume(n) for n in "abcde"])
    result = run(fake, concurrency=2)
    assert [len(names) for kind, names, _t, _s in fake.waits if kind == "Backup"] == [2, 2, 1]
    assert [len(names) for kind, names, _t, _s in fake.waits if kind == "Snapshot"] == [2, 2, 1]
    assert len(result["backups"]) == 5


def test_a_failing_volume_does_not_stop_the_others():
    fake = FakeLonghorn([volume("a"), volume("bad"), volume("c")], failing=["bad"])
    result = run(fake, concurrency=1)
    assert {b["volume"]: b["state"] for b in result["backups"]} == {"a": "Completed", "bad": "Error", "c": "Completed"}
    assert result["failed_volumes"] == ["bad"]
    assert result["msg"] == "1 of 3 volume backups failed: bad (Error: connection reset by peer)"


def test_a_backup_that_times_out_is_a_failure_naming_its_last_state():
    fake = FakeLonghorn([volume("a"), volume("slow")], stuck=["slow"])
    result = run(fake)
    by_volume = {b["volume"]: b for b in result["backups"]}
    assert by_volume["a"]["state"] == "Completed"
    assert by_volume["slow"]["state"] == "InProgress" and "last state: InProgress" in by_volume["slow"]["error"]
    assert result["failed_volumes"] == ["slow"]


def test_no_wait_creates_both_and_does_not_poll():
    fake = FakeLonghorn([volume("a")])
    result = run(fake, wait=False)
    assert [kind for kind, _body in fake.writes] == ["Snapshot", "Backup"] and fake.waits == []
    assert result["backups"][0]["state"] == "Created" and result["failed_volumes"] == []


def test_max_age_skips_volumes_with_a_recent_completed_backup():
    backups = [completed_backup("backup-old", "a", "2026-01-01T00:00:00Z"), completed_backup("backup-new", "b", "2026-01-02T02:30:00Z")]
    fake = FakeLonghorn([volume("a"), volume("b")], backups=backups)
    result = run(fake, max_age="1h")
    assert [b["volume"] for b in result["backups"]] == ["a"]
    assert result["skipped_volumes"] == [{"volume": "b", "reason": "has a Completed backup from 2026-01-02T02:30:00Z, newer than max_age"}]


def test_nothing_to_do_is_not_changed():
    fake = FakeLonghorn([volume("a")], backups=[completed_backup("backup-new", "a", "2026-01-02T02:59:00Z")])
    result = run(fake, max_age="3600")
    assert result["changed"] is False and fake.writes == []


def test_unavailable_target_fails_before_any_write():
    fake = FakeLonghorn([volume("a")], target_available=False)
    with pytest.raises(LonghornError, match="backup target default is not available: bad credentials; nothing was backed up"):
        run(fake)
    assert fake.writes == []


@pytest.mark.parametrize("params, message", [({"max_age": "soon"}, "invalid max_age"), ({"concurrency": 0}, "concurrency must be at least 1")])
def test_bad_options_are_named(params, message):
    fake = FakeLonghorn([volume("a")])
    with pytest.raises(LonghornError, match=message):
        run(fake, **params)
    assert fake.writes == []


def test_latest_completed_backup_ignores_errors_and_picks_the_newest():
    failed = {"metadata": {"name": "backup-e"}, "status": {"state": "Error", "volumeName": "a", "snapshotCreatedAt": "2026-01-03T00:00:00Z"}}
    latest = vb.latest_completed_backups([completed_backup("backup-1", "a", "2026-01-01T00:00:00Z"),
                                          completed_backup("backup-2", "a", "2026-01-02T00:00:00Z"), failed])
    assert latest["a"][1]["metadata"]["name"] == "backup-2"


# --- argspec ---------------------------------------------------------------------------------------

def _main_result(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module_under_test.main()
    return json.loads(capsys.readouterr().out)


def test_argspec_volumes_and_label_selector_are_exclusive(capsys):
    result = _main_result(capsys, {"volumes": ["a"], "label_selector": "x=y"})
    assert result["failed"] is True and "mutually exclusive: volumes|label_selector" in result["msg"]


def test_argspec_backup_mode_choices(capsys):
    result = _main_result(capsys, {"backup_mode": "differential"})
    assert result["failed"] is True and "backup_mode" in result["msg"] and "differential" in result["msg"]


def test_argspec_defaults():
    spec = module_under_test.argument_spec()
    assert spec["backup_mode"]["default"] == "incremental" and spec["concurrency"]["default"] == 5
    assert spec["namespace"]["default"] == NS and spec["wait"]["default"] is True
    assert "kubeconfig" in spec, "the kubernetes.core auth options"
