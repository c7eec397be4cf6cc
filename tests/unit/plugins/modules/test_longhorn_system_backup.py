# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_system_backup and _system_backup with a fake cluster."""

from __future__ import annotations

import copy
import datetime
import json
import re

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _system_backup as sb
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError, WaitTimeout
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_system_backup as module_under_test

NS = "longhorn-system"
LABEL = "longhorn.io/delete-custom-resource-only"
AVAILABLE = {"metadata": {"name": "default"}, "status": {"available": True}}
UNAVAILABLE = {"metadata": {"name": "default"}, "status": {"available": False, "conditions": [
    {"type": "Unavailable", "status": "True", "message": "failed to list objects: InvalidAccessKeyId"}]}}


class FakeAccess:
    """Objects keyed by (kind, name); a new SystemBackup becomes ``final_state`` when waited for."""

    def __init__(self, objects, check_mode=False, final_state="Ready", conditions=None):
        self.objects = copy.deepcopy(objects)
        self.check_mode = check_mode
        self.final_state = final_state
        self.conditions = conditions or []
        self.calls = []

    def real_writes(self):
        return [c for c in self.calls if not c[-1]]

    namespaces = ("default", NS)

    def get(self, kind, _api_version, name, namespace=None):
        if kind == "Namespace":
            return {"metadata": {"name": name}} if name in self.namespaces else None
        assert namespace == NS
        return copy.deepcopy(self.objects.get((kind, name)))

    def list_namespaces(self):
        return [{"metadata": {"name": name}} for name in self.namespaces]

    def create(self, kind, _api_version, body, namespace=None):
        self.calls.append(("create", kind, body["metadata"]["name"], self.check_mode))
        if not self.check_mode:
            self.objects[(kind, body["metadata"]["name"])] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def merge_patch(self, kind, _api_version, name, patch, namespace=None):
        self.calls.append(("patch", kind, name, json.dumps(patch), self.check_mode))
        labels = self.objects[(kind, name)]["metadata"].setdefault("labels", {})
        for key, value in patch["metadata"]["labels"].items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value

    def delete(self, kind, _api_version, name, namespace=None):
        self.calls.append(("delete", kind, name, dict(self.objects[(kind, name)]["metadata"].get("labels") or {}), self.check_mode))
        self.objects.pop((kind, name), None)

    def wait_for(self, kind, _api_version, names, predicate, namespace=None, timeout=600, sleep=2):
        obj = self.objects[(kind, names[0])]
        obj.setdefault("status", {}).update(state=self.final_state, conditions=self.conditions)
        if predicate(obj):
            return {names[0]: copy.deepcopy(obj)}
        raise WaitTimeout("timeout", pending=names, last={names[0]: obj})


class FakeModule:
    def __init__(self, check_mode=False, diff=True, **params):
        self.params = dict(name="nightly", state="present", volume_backup_policy="if-not-present", keep_remote=False, namespace=NS,
                           wait=True, wait_timeout=10, wait_sleep=1)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


def existing(name="nightly", state="Ready", labels=None, policy="if-not-present"):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"volumeBackupPolicy": policy}, "status": {"state": state}}


def handle(access, **params):
    module = FakeModule(check_mode=params.pop("check_mode", False), **params)
    return module_under_test.STATE_HANDLERS[module.params["state"]](module, access), module


def test_present_creates_and_waits_for_ready():
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE})
    result, _module = handle(access, volume_backup_policy="always")
    assert result["changed"] is True and result["result"]["status"]["state"] == "Ready"
    assert access.objects[("SystemBackup", "nightly")]["spec"] == {"volumeBackupPolicy": "always"}
    assert result["diff"] == {"before": {}, "after": {"name": "nightly", "volume_backup_policy": "always", "keep_remote": False}}


def test_present_in_check_mode_is_a_dry_run_only():
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE}, check_mode=True)
    result, _module = handle(access, check_mode=True)
    assert result["changed"] is True and access.real_writes() == []
    assert ("SystemBackup", "nightly") not in access.objects


def test_existing_is_not_changed_and_never_recreated():
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE, ("SystemBackup", "nightly"): existing(policy="always")})
    result, module = handle(access)
    assert result["changed"] is False and access.calls == []
    assert "volume_backup_policy always" in module.warnings[0]


def test_existing_in_error_fails_with_its_conditions():
    failed = existing(state="Error")
    failed["status"]["conditions"] = [{"type": "Error", "status": "True", "reason": "Upload", "message": "connection refused"}]
    access = FakeAccess({("SystemBackup", "nightly"): failed})
    with pytest.raises(LonghornError, match="SystemBackup nightly failed: Upload: connection refused"):
        handle(access, check_mode=True)


def test_error_while_waiting_reports_the_condition():
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE}, final_state="Error",
                        conditions=[{"type": "Error", "status": "True", "reason": "Generate", "message": "volume backup failed"}])
    with pytest.raises(LonghornError, match="Generate: volume backup failed"):
        handle(access)


def test_timeout_names_the_last_state():
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE}, final_state="Uploading")
    with pytest.raises(LonghornError, match=r"Timed out after 10s waiting for SystemBackup nightly to be Ready \(last state: Uploading\)"):
        handle(access)


@pytest.mark.parametrize("target", [None, UNAVAILABLE])
def test_refused_while_the_default_target_is_unavailable(target):
    access = FakeAccess({("BackupTarget", "default"): target} if target else {})
    with pytest.raises(LonghornError, match="Cannot create SystemBackup nightly: BackupTarget default") as info:
        handle(access)
    if target:
        assert "InvalidAccessKeyId" in str(info.value)
    assert access.calls == []


def test_generated_name_is_valid_and_time_stamped():
    name = sb.generated_name(datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc))
    assert name == "system-backup-20260102-030405"
    assert re.match(r"^[a-z0-9][a-z0-9_.-]+$", name)


@pytest.mark.parametrize("keep_remote", [False, True])
def test_absent_labels_before_deleting(keep_remote):
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE, ("SystemBackup", "nightly"): existing()})
    result, _module = handle(access, state="absent", keep_remote=keep_remote)
    assert result["changed"] is True and ("SystemBackup", "nightly") not in access.objects
    deletes = [c for c in access.calls if c[0] == "delete"]
    assert len(deletes) == 1 and (LABEL in deletes[0][3]) is keep_remote
    assert [c[0] for c in access.calls] == (["patch", "delete"] if keep_remote else ["delete"])


def test_absent_clears_a_stale_keep_label_when_remote_data_must_go():
    access = FakeAccess({("BackupTarget", "default"): AVAILABLE, ("SystemBackup", "nightly"): existing(labels={LABEL: "true"})})
    handle(access, state="absent")
    assert access.calls[0][0] == "patch" and access.calls[1][3] == {}


def test_absent_warns_that_an_unavailable_target_keeps_remote_data():
    access = FakeAccess({("BackupTarget", "default"): UNAVAILABLE, ("SystemBackup", "nightly"): existing()})
    _result, module = handle(access, state="absent")
    assert "keeps the system backup in the backupstore" in module.warnings[0]


def test_absent_check_mode_and_idempotency():
    access = FakeAccess({("SystemBackup", "nightly"): existing()}, check_mode=True)
    result, _module = handle(access, state="absent", check_mode=True)
    assert result["changed"] is True and access.calls == [] and result["diff"]["after"] == {}
    gone = FakeAccess({})
    result, _module = handle(gone, state="absent")
    assert result["changed"] is False and gone.calls == []


def test_argspec_absent_needs_a_name(capsys):
    with patch_module_args({"state": "absent"}):
        with pytest.raises(SystemExit):
            module_under_test.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and "state is absent but all of the following are missing: name" in result["msg"]


def test_argspec_states_and_policies():
    spec = module_under_test.argument_spec()
    assert spec["state"]["choices"] == ["present", "absent", "restored"]
    assert spec["volume_backup_policy"]["choices"] == ["if-not-present", "always", "disabled"]


# ---- state: restored ------------------------------------------------------------------------


def _system_backup(name, state="Ready", created="2026-01-01T02:00:00Z", version="v1.10.2"):
    return {"metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
            "status": {"state": state, "createdAt": created, "version": version}}


def _volume(name, state="detached", pvc=None):
    status = {"state": state}
    if pvc:
        status["kubernetesStatus"] = {"namespace": pvc[0], "pvcName": pvc[1]}
    return {"metadata": {"name": name}, "status": status}


class FakeRestoreAccess(FakeAccess):
    """Adds list(); a new SystemRestore reaches ``final_state`` when waited for."""

    def __init__(self, objects, check_mode=False, final_state="Completed", conditions=None):
        super().__init__(objects, check_mode=check_mode, final_state=final_state, conditions=conditions)

    def list(self, kind, _api_version, namespace=None):
        if kind == "Namespace":
            return self.list_namespaces()
        assert namespace == NS
        return [copy.deepcopy(obj) for (k, _n), obj in sorted(self.objects.items()) if k == kind]


def _restore_cluster(extra=None):
    objects = {
        ("SystemBackup", "old"): _system_backup("old", created="2026-01-01T02:00:00Z"),
        ("SystemBackup", "new"): _system_backup("new", created="2026-01-02T02:00:00Z"),
        ("SystemBackup", "broken"): _system_backup("broken", state="Error", created="2026-01-03T02:00:00Z"),
        ("Setting", "current-longhorn-version"): {"metadata": {"name": "current-longhorn-version"}, "value": "v1.10.2"},
        ("Volume", "pvc-1"): _volume("pvc-1"),
    }
    objects.update(extra or {})
    return objects


def _restore(access, **params):
    module = FakeModule(check_mode=access.check_mode, **dict(dict(state="restored", name=None, restore_name=None), **params))
    return module, module_under_test.ensure_restored(module, access)


def test_restored_picks_the_newest_ready_backup_and_waits():
    access = FakeRestoreAccess(_restore_cluster())
    module, result = _restore(access)
    assert result["changed"] is True and result["name"] == "new" and result["restore_name"] == "restore-new"
    assert result["result"]["status"]["state"] == "Completed"
    assert result["rollout_job"] == "longhorn-system-rollout-restore-new"
    assert access.objects[("SystemRestore", "restore-new")]["spec"] == {"systemBackup": "new"}
    assert result["diff"]["after"] == {"restore_name": "restore-new", "system_backup": "new"}
    assert module.warnings == []


def test_restored_in_check_mode_is_a_dry_run_only():
    access = FakeRestoreAccess(_restore_cluster(), check_mode=True)
    _module, result = _restore(access, name="old")
    assert result["changed"] is True and result["name"] == "old"
    assert access.real_writes() == [] and ("SystemRestore", "restore-old") not in access.objects


def test_restored_is_idempotent_once_completed():
    done = {"metadata": {"name": "restore-new", "namespace": NS}, "spec": {"systemBackup": "new"}, "status": {"state": "Completed"}}
    access = FakeRestoreAccess(_restore_cluster({("SystemRestore", "restore-new"): done}))
    _module, result = _restore(access)
    assert result["changed"] is False and access.calls == []


def test_restored_refuses_attached_volumes_naming_them_and_their_claims():
    access = FakeRestoreAccess(_restore_cluster({("Volume", "pvc-2"): _volume("pvc-2", "attached", ("apps", "db-data"))}))
    with pytest.raises(LonghornError) as failure:
        _restore(access)
    assert "pvc-2 (attached for PVC apps/db-data)" in str(failure.value) and "pvc-1" not in str(failure.value)
    assert failure.value.details["volumes_not_detached"] == ["pvc-2 (attached for PVC apps/db-data)"]
    assert access.calls == []


@pytest.mark.parametrize("name, message", [
    ("missing", "SystemBackup missing not found (found: broken (Error), new (Ready), old (Ready))"),
    ("broken", "SystemBackup broken is Error, not Ready"),
])
def test_restored_needs_an_existing_ready_backup(name, message):
    access = FakeRestoreAccess(_restore_cluster())
    with pytest.raises(LonghornError, match=re.escape(message)):
        _restore(access, name=name)
    assert access.calls == []


def test_restored_without_any_ready_backup_lists_what_exists():
    access = FakeRestoreAccess({("SystemBackup", "broken"): _system_backup("broken", state="Error")})
    with pytest.raises(LonghornError, match=re.escape("No Ready SystemBackup to restore from (found: broken (Error))")):
        _restore(access)


def test_restored_error_reports_the_condition_and_the_rollout_job():
    conditions = [{"type": "Error", "status": "True", "reason": "Restore", "message": "volume pvc-1 is restoring data"}]
    access = FakeRestoreAccess(_restore_cluster(), final_state="Error", conditions=conditions)
    with pytest.raises(LonghornError) as failure:
        _restore(access)
    text = str(failure.value)
    assert "SystemRestore restore-new failed: Restore: volume pvc-1 is restoring data" in text
    assert "longhorn-system-rollout-restore-new" in text and failure.value.details["rollout_job"] == "longhorn-system-rollout-restore-new"


def test_restored_refuses_while_another_restore_runs():
    running = {"metadata": {"name": "other", "labels": {"longhorn.io/system-restore": "InProgress"}},
               "spec": {"systemBackup": "old"}, "status": {"state": "Restoring"}}
    access = FakeRestoreAccess(_restore_cluster({("SystemRestore", "other"): running}))
    with pytest.raises(LonghornError, match="Another SystemRestore is in progress: other"):
        _restore(access)


def test_restored_name_clash_with_another_backup_is_an_error():
    clash = {"metadata": {"name": "restore-new"}, "spec": {"systemBackup": "old"}, "status": {"state": "Completed"}}
    access = FakeRestoreAccess(_restore_cluster({("SystemRestore", "restore-new"): clash}))
    with pytest.raises(LonghornError, match="restores SystemBackup old, not new"):
        _restore(access)


def test_restored_warns_across_minor_versions():
    access = FakeRestoreAccess(_restore_cluster({("SystemBackup", "new"): _system_backup("new", created="2026-01-02T02:00:00Z",
                                                                                         version="v1.9.1")}))
    module, result = _restore(access)
    assert result["changed"] is True
    assert module.warnings and "Longhorn v1.9.1 but the cluster runs v1.10.2" in module.warnings[0]


@pytest.mark.parametrize("backup, cluster, warns", [("v1.10.0", "v1.10.2", False), ("v1.9.2", "v1.10.2", True), ("", "v1.10.2", False)])
def test_version_warning_compares_major_minor(backup, cluster, warns):
    assert bool(sb.version_warning(backup, cluster)) is warns


def test_default_restore_name_is_a_valid_name():
    name = sb.default_restore_name("x" * 80)
    assert len(name) <= 63 and name.startswith("restore-")
