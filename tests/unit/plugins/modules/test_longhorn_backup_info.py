# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_backup_info with a fake cluster: requests made, result, documentation."""

from __future__ import annotations

import copy
import datetime
import json

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_backup_info as module_under_test

NS = "longhorn-system"
NOW = datetime.datetime(2026, 11, 22, 2, 0, 0, tzinfo=datetime.timezone.utc)


def _volume(name):
    return {"metadata": {"name": name, "labels": {}}, "spec": {"size": "1024"}, "status": {"state": "detached"}}


class FakeAccess:
    """Lists and gets from canned objects; records every call. Any write fails the test."""

    def __init__(self, objects):
        self.objects = copy.deepcopy(objects)
        self.calls = []

    def list(self, kind, _api_version, namespace=None, label_selector=None, field_selector=None):
        assert namespace == NS
        self.calls.append(("list", kind))
        return copy.deepcopy(self.objects.get(kind, []))

    def get(self, kind, _api_version, name, namespace=None):
        assert namespace == NS
        self.calls.append(("get", kind, name))
        return copy.deepcopy(next((o for o in self.objects.get(kind, []) if o["metadata"]["name"] == name), None))

    def __getattr__(self, name):
        raise AssertionError("longhorn_backup_info must not call %s" % name)


CLUSTER = {
    "Setting": [{"metadata": {"name": "current-longhorn-version"}, "value": "v1.10.2"},
                {"metadata": {"name": "backup-compression-method"}, "value": "lz4"}],
    "BackupTarget": [{"metadata": {"name": "default"}, "spec": {"backupTargetURL": "s3://b@r/", "credentialSecret": "c", "pollInterval": "5m0s"},
                      "status": {"available": True, "lastSyncedAt": "2026-11-22T01:00:00Z"}},
                     {"metadata": {"name": "offsite"}, "spec": {"backupTargetURL": "s3://o@r/"}, "status": {"available": False}}],
    "Volume": [_volume("vol-b"), _volume("vol-a")],
    "Backup": [{"metadata": {"name": "b1", "labels": {"backup-volume": "vol-a", "backup-target": "default"}},
                "status": {"state": "Completed", "backupCreatedAt": "2026-11-22T01:00:00Z", "size": "10"}}],
    "SystemBackup": [{"metadata": {"name": "sb"}, "spec": {}, "status": {"state": "Ready", "createdAt": "2026-11-22T00:00:00Z"}}],
}


def params(**overrides):
    values = {"namespace": NS, "volumes": None, "backup_target": "default"}
    values.update(overrides)
    return values


def test_one_request_per_kind_and_no_writes():
    access = FakeAccess(CLUSTER)
    result = module_under_test.run(access, params(), now=NOW)
    assert sorted(access.calls) == sorted([("list", "Setting"), ("get", "BackupTarget", "default"), ("list", "Volume"),
                                           ("list", "Backup"), ("list", "SystemBackup")])
    assert result["changed"] is False
    assert result["longhorn_version"] == "v1.10.2" and result["checked_at"] == "2026-11-22T02:00:00Z"
    assert [v["name"] for v in result["volumes"]] == ["vol-a", "vol-b"]
    assert result["volumes"][0]["last_completed_backup"]["age_seconds"] == 3600
    assert result["last_ready_system_backup"]["name"] == "sb"
    assert result["backup_target"]["poll_interval"] == 300


def test_named_target():
    access = FakeAccess(CLUSTER)
    result = module_under_test.run(access, params(backup_target="offsite"), now=NOW)
    assert ("get", "BackupTarget", "offsite") in access.calls
    assert result["backup_target"]["name"] == "offsite" and result["backup_target"]["available"] is False
    # b1 is on target default, so it does not count for offsite
    assert all(v["last_backup"] is None for v in result["volumes"])


def test_unknown_volume_raises():
    with pytest.raises(LonghornError) as caught:
        module_under_test.run(FakeAccess(CLUSTER), params(volumes=["vol-a", "vol-x"]), now=NOW)
    # The unknown name first, then the known ones (issue 10: a refusal names the option, the value and what exists).
    assert str(caught.value).startswith("volumes: No Longhorn volume named vol-x (known: ")
    assert "vol-a" in str(caught.value).split("(known: ", 1)[1]


def test_now_defaults_to_the_clock():
    result = module_under_test.run(FakeAccess(CLUSTER), params())
    checked = datetime.datetime.strptime(result["checked_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - checked).total_seconds()) < 60


def test_main_fails_with_the_message_and_details(capsys, monkeypatch):
    monkeypatch.setattr(module_under_test, "K8sAccess", lambda _module: FakeAccess(CLUSTER))
    with patch_module_args({"volumes": ["nope"]}):
        with pytest.raises(SystemExit):
            module_under_test.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and "nope" in result["msg"] and result["unknown_volumes"] == ["nope"]


def test_main_in_check_mode_reports(capsys, monkeypatch):
    monkeypatch.setattr(module_under_test, "K8sAccess", lambda _module: FakeAccess(CLUSTER))
    with patch_module_args({"_ansible_check_mode": True}):
        with pytest.raises(SystemExit):
            module_under_test.main()
    result = json.loads(capsys.readouterr().out)
    assert result.get("failed") is not True and result["changed"] is False
    assert [v["name"] for v in result["volumes"]] == ["vol-a", "vol-b"]


def test_argspec_defaults():
    spec = module_under_test.argument_spec()
    assert spec["namespace"]["default"] == NS and spec["backup_target"]["default"] == "default"
    assert spec["volumes"] == {"type": "list", "elements": "str"}
    assert "kubeconfig" in spec, "the kubernetes.core auth options"


def test_documentation_agrees_with_the_argspec_and_the_contract():
    doc = yaml.safe_load(module_under_test.DOCUMENTATION)
    spec = module_under_test.argument_spec()
    for option in ("namespace", "volumes", "backup_target"):
        assert doc["options"][option]["type"] == spec[option]["type"]
        assert doc["options"][option].get("default") == spec[option].get("default")
    returned = yaml.safe_load(module_under_test.RETURN)
    result = module_under_test.run(FakeAccess(CLUSTER), params(), now=NOW)
    assert set(result) - {"changed"} == set(returned)
    assert set(result["backup_target"]) == set(returned["backup_target"]["contains"])
    assert set(result["volumes"][0]) == set(returned["volumes"]["contains"])
    assert set(result["volumes"][0]["last_completed_backup"]) == set(returned["volumes"]["contains"]["last_backup"]["contains"])
    assert set(result["system_backups"][0]) == set(returned["system_backups"]["contains"])
