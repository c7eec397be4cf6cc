# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _backup_info: the backup view built from plain API objects and an injected ``now``."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backup_info as bi
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError

NOW = datetime.datetime(2026, 11, 22, 2, 0, 0, tzinfo=datetime.timezone.utc)
SETTINGS = {"current-longhorn-version": "v1.10.2"}
LEGACY_SETTINGS = {"current-longhorn-version": "v1.7.2", "backup-target": "s3://old@us-east-1/",
                   "backup-target-credential-secret": "old-creds", "backupstore-poll-interval": "600"}


def volume(name, labels=None, size="1073741824", pvc=("apps", None), access_mode="rwo", **status):
    namespace, claim = pvc
    body = {
        "metadata": {"name": name, "labels": labels if labels is not None else {"recurring-job-group.longhorn.io/default": "enabled"}},
        "spec": {"size": size, "accessMode": access_mode, "dataEngine": "v1", "backupTargetName": "default"},
        "status": {"state": "attached", "robustness": "healthy", "kubernetesStatus": {
            "namespace": namespace if claim else "", "pvcName": claim or "", "pvName": name if claim else "",
            "pvStatus": "Bound" if claim else "", "lastPVCRefAt": ""}},
    }
    body["status"].update(status)
    return body


def backup(name, volume_name, state="Completed", created=None, snapshot=None, creation=None, target="default", label=True,
           size="2097152", error=""):
    labels = {}
    if label:
        labels["backup-volume"] = volume_name
    if target:
        labels["backup-target"] = target
    status = {"state": state, "url": "s3://b@r/?backup=%s&volume=%s" % (name, volume_name) if state == "Completed" else "",
              "size": size if state == "Completed" else "", "error": error, "backupCreatedAt": created or "",
              "snapshotCreatedAt": snapshot or ""}
    if not label:
        status["volumeName"] = volume_name
    return {"metadata": {"name": name, "labels": labels, "creationTimestamp": creation or "2026-11-01T00:00:00Z"}, "status": status}


def system_backup(name, state="Ready", created="", creation="2026-11-01T00:00:00Z", conditions=None, version="v1.10.2"):
    return {"metadata": {"name": name, "creationTimestamp": creation}, "spec": {"volumeBackupPolicy": "if-not-present"},
            "status": {"state": state, "createdAt": created, "version": version, "conditions": conditions or []}}


def target(available=True, synced="2026-11-22T01:59:00Z", conditions=None, **spec):
    return {"metadata": {"name": "default"},
            "spec": dict({"backupTargetURL": "s3://b@r/", "credentialSecret": "creds", "pollInterval": "5m0s"}, **spec),
            "status": {"available": available, "lastSyncedAt": synced, "conditions": conditions or []}}


def view(volumes=(), backups=(), system_backups=(), settings=None, bt="default-target", **kwargs):
    return bi.build_view(settings=SETTINGS if settings is None else settings, target=target() if bt == "default-target" else bt,
                         volumes=list(volumes), backups=list(backups), system_backups=list(system_backups), now=NOW, **kwargs)


# --- conversions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2026-11-22T01:00:00Z", "2026-11-22T01:00:00Z"),
    ("2026-11-22T01:00:00.123456789Z", "2026-11-22T01:00:00Z"),
    ("2026-11-22T03:00:00+02:00", "2026-11-22T01:00:00Z"),
    ("", None), (None, None), ("yesterday", None),
])
def test_times_are_normalized_to_utc_z(text, expected):
    assert bi.iso(bi.parse_time(text)) == expected


def test_age_against_injected_now():
    assert bi.age_seconds(bi.parse_time("2026-11-22T01:00:00Z"), NOW) == 3600
    assert bi.age_seconds(bi.parse_time("2026-11-22T02:00:30Z"), NOW) == -30  # cluster clock ahead: shown, not hidden
    assert bi.age_seconds(None, NOW) is None


@pytest.mark.parametrize("value, expected", [("1073741824", 1073741824), (2097152, 2097152), ("", None), (None, None), ("x", None),
                                             (True, None)])
def test_int64_strings(value, expected):
    assert bi.to_int(value) == expected


@pytest.mark.parametrize("value, expected", [("5m0s", 300), ("300", 300), (300, 300), ("1h0m0s", 3600), ("0s", 0), ("", None),
                                             (None, None), ("soon", None)])
def test_poll_interval_in_seconds(value, expected):
    assert bi.poll_seconds(value) == expected


def test_settings_values_from_setting_crs():
    items = [{"metadata": {"name": "current-longhorn-version"}, "value": "v1.9.1"}, {"metadata": {"name": "backup-target"}, "value": ""}]
    assert bi.settings_values(items) == {"current-longhorn-version": "v1.9.1", "backup-target": ""}
    assert bi.settings_values(None) == {}


# --- backups ----------------------------------------------------------------------------------------

def test_backup_time_falls_back_from_upload_to_snapshot_to_creation():
    assert bi.iso(bi.backup_time(backup("b", "v", created="2026-11-22T01:00:00Z", snapshot="2026-11-22T00:59:00Z"))) == "2026-11-22T01:00:00Z"
    assert bi.iso(bi.backup_time(backup("b", "v", state="Error", snapshot="2026-11-22T00:59:00Z"))) == "2026-11-22T00:59:00Z"
    assert bi.iso(bi.backup_time(backup("b", "v", state="", creation="2026-11-22T00:58:00Z"))) == "2026-11-22T00:58:00Z"
    assert bi.backup_time({"metadata": {"name": "b"}}) is None


def test_backups_found_by_label_else_status_volume_name():
    by_label = backup("b1", "vol-a")
    by_status = backup("b2", "vol-b", label=False)
    nowhere = {"metadata": {"name": "b3"}, "status": {"state": "Error"}}
    grouped = bi.backups_by_volume([by_label, by_status, nowhere])
    assert {k: [b["metadata"]["name"] for b in v] for k, v in grouped.items()} == {"vol-a": ["b1"], "vol-b": ["b2"]}


def test_label_wins_over_status_volume_name():
    item = backup("b1", "vol-a")
    item["status"]["volumeName"] = "something-else"
    assert bi.backup_volume_name(item) == "vol-a"


def test_backups_of_other_targets_are_left_out_and_pre_18_backups_count():
    items = [backup("on-default", "v"), backup("offsite", "v", target="offsite"), backup("legacy", "v", target=None)]
    grouped = bi.backups_by_volume(items, "default")
    assert sorted(b["metadata"]["name"] for b in grouped["v"]) == ["legacy", "on-default"]
    assert sorted(b["metadata"]["name"] for b in bi.backups_by_volume(items, "offsite")["v"]) == ["legacy", "offsite"]


def test_target_from_status_when_the_label_is_missing():
    item = backup("b", "v", target=None)
    item["status"]["backupTargetName"] = "offsite"
    assert bi.backups_by_volume([item], "default") == {}


def test_newest_first_with_ties_broken_by_creation_then_name():
    same = "2026-11-22T01:00:00Z"
    items = [backup("b-a", "v", created=same, creation="2026-11-22T00:00:01Z"),
             backup("b-c", "v", created=same, creation="2026-11-22T00:00:00Z"),
             backup("b-b", "v", created=same, creation="2026-11-22T00:00:01Z"),
             backup("b-old", "v", created="2026-11-21T01:00:00Z", creation="2026-11-23T00:00:00Z")]
    assert [b["metadata"]["name"] for b in bi.backups_by_volume(items)["v"]] == ["b-b", "b-a", "b-c", "b-old"]


def test_backup_entry_shape():
    entry = bi.backup_entry(backup("backup-1", "v", created="2026-11-22T01:00:00Z", snapshot="2026-11-22T00:59:58Z"), NOW)
    assert entry == {"name": "backup-1", "state": "Completed", "created_at": "2026-11-22T01:00:00Z", "age_seconds": 3600,
                     "url": "s3://b@r/?backup=backup-1&volume=v", "size": 2097152, "error": None,
                     "snapshot_created_at": "2026-11-22T00:59:58Z", "backup_target": "default"}


# --- recurring jobs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, expected", [
    # no recurring-job labels at all: Longhorn's tagRecurringJobDefaultLabel puts it into group default
    ({}, ([], ["default"], True)),
    (None, ([], ["default"], True)),
    ({"app": "db", "longhorn.io/volume": "x"}, ([], ["default"], True)),
    # the label Longhorn itself adds
    ({"recurring-job-group.longhorn.io/default": "enabled"}, ([], ["default"], False)),
    # a job label alone: no default group (the manager only adds it when no job/group label exists)
    ({"recurring-job.longhorn.io/nightly": "enabled"}, (["nightly"], [], False)),
    # a group label alone: no default either
    ({"recurring-job-group.longhorn.io/weekly": "enabled"}, ([], ["weekly"], False)),
    # a disabled label is not membership, but it still keeps Longhorn from adding the default group
    ({"recurring-job.longhorn.io/hourly": "disabled"}, ([], [], False)),
    ({"recurring-job.longhorn.io/b": "enabled", "recurring-job.longhorn.io/a": "enabled",
      "recurring-job-group.longhorn.io/default": "enabled", "recurring-job-group.longhorn.io/weekly": "enabled"},
     (["a", "b"], ["default", "weekly"], False)),
])
def test_recurring_membership(labels, expected):
    assert bi.recurring_membership(labels) == expected


# --- volumes ----------------------------------------------------------------------------------------

def test_volume_without_backups():
    result = view([volume("v1", pvc=("apps", "data"))])
    entry = result["volumes"][0]
    assert entry["last_backup"] is None and entry["last_completed_backup"] is None and entry["backup_count"] == 0
    assert (entry["pvc_namespace"], entry["pvc_name"], entry["pv_name"], entry["pv_status"]) == ("apps", "data", "v1", "Bound")
    assert entry["size"] == 1073741824 and entry["access_mode"] == "rwo" and entry["data_engine"] == "v1"
    assert entry["state"] == "attached" and entry["robustness"] == "healthy"


def test_volume_without_pvc_reports_nulls():
    entry = view([volume("v1")])["volumes"][0]
    assert (entry["pvc_namespace"], entry["pvc_name"], entry["pv_name"], entry["pv_status"]) == (None, None, None, None)


def test_volume_whose_kubernetes_status_is_missing():
    bare = {"metadata": {"name": "new"}, "spec": {}}
    entry = view([bare])["volumes"][0]
    assert entry["pvc_name"] is None and entry["size"] is None and entry["state"] == ""
    assert entry["access_mode"] == "rwo" and entry["data_engine"] == "v1"
    assert entry["recurring_job_groups"] == ["default"] and entry["recurring_job_default_implicit"] is True


def test_rwx_volume():
    assert view([volume("v1", access_mode="rwx")])["volumes"][0]["access_mode"] == "rwx"


def test_failed_last_backup_with_an_older_completed_one():
    items = [backup("backup-ok-1", "v1", created="2026-11-20T01:00:00Z"),
             backup("backup-ok-2", "v1", created="2026-11-21T01:00:00Z"),
             backup("backup-err", "v1", state="Error", snapshot="2026-11-22T01:30:00Z", error="failed to upload: AccessDenied")]
    entry = view([volume("v1")], items)["volumes"][0]
    assert entry["last_backup"]["name"] == "backup-err"
    assert entry["last_backup"]["state"] == "Error" and entry["last_backup"]["error"] == "failed to upload: AccessDenied"
    assert entry["last_backup"]["created_at"] == "2026-11-22T01:30:00Z" and entry["last_backup"]["age_seconds"] == 1800
    assert entry["last_backup"]["url"] is None and entry["last_backup"]["size"] is None
    assert entry["last_completed_backup"]["name"] == "backup-ok-2"
    assert entry["last_completed_backup"]["age_seconds"] == 25 * 3600
    assert entry["backup_count"] == 2


def test_in_progress_backup_is_the_last_backup_but_not_counted():
    items = [backup("done", "v1", created="2026-11-21T01:00:00Z"),
             backup("running", "v1", state="InProgress", snapshot="2026-11-22T01:59:00Z")]
    entry = view([volume("v1")], items)["volumes"][0]
    assert entry["last_backup"]["name"] == "running" and entry["last_completed_backup"]["name"] == "done"
    assert entry["backup_count"] == 1


def test_volumes_sorted_by_name_and_backups_not_mixed_up():
    items = [backup("b-z", "zeta", created="2026-11-22T01:00:00Z"), backup("b-a", "alpha", created="2026-11-22T00:00:00Z")]
    result = view([volume("zeta"), volume("alpha"), volume("mid")], items)
    assert [(v["name"], (v["last_backup"] or {}).get("name")) for v in result["volumes"]] == [
        ("alpha", "b-a"), ("mid", None), ("zeta", "b-z")]


def test_backups_of_volumes_not_in_the_cluster_are_listed():
    result = view([volume("here")], [backup("b1", "gone"), backup("b2", "here"), backup("b3", "offsite-only", target="offsite")])
    assert result["backup_volumes_not_in_cluster"] == ["gone"]


def test_volume_filter_sorted_and_deduplicated():
    result = view([volume("a"), volume("b"), volume("c")], names=["c", "a", "c"])
    assert [v["name"] for v in result["volumes"]] == ["a", "c"]


def test_empty_volume_filter_reports_none():
    assert view([volume("a")], names=[])["volumes"] == []


def test_unknown_volume_name_is_an_error_naming_it():
    with pytest.raises(LonghornError) as caught:
        view([volume("a"), volume("b")], names=["a", "nope", "zzz"])
    assert "nope" in str(caught.value) and "zzz" in str(caught.value) and "No Longhorn volume" in str(caught.value)
    assert caught.value.details == {"unknown_volumes": ["nope", "zzz"]}


# --- backup target ----------------------------------------------------------------------------------

def test_available_target():
    assert view()["backup_target"] == {"name": "default", "url": "s3://b@r/", "credential_secret": "creds", "poll_interval": 300,
                                       "available": True, "last_synced_at": "2026-11-22T01:59:00Z", "message": None}


def test_unavailable_target_carries_the_condition_message():
    conditions = [{"type": "Unavailable", "status": "True", "reason": "Unavailable",
                   "message": "failed to list system backups in s3://b@r/: AccessDenied"}]
    result = view(bt=target(available=False, synced="", conditions=conditions))["backup_target"]
    assert result["available"] is False and result["last_synced_at"] is None
    assert result["message"] == "failed to list system backups in s3://b@r/: AccessDenied"


def test_available_target_hides_a_stale_condition_message():
    conditions = [{"type": "Unavailable", "status": "False", "reason": "", "message": ""}]
    assert view(bt=target(conditions=conditions))["backup_target"]["message"] is None


def test_unset_target_reports_nulls():
    result = view(bt=target(available=False, synced=None, backupTargetURL="", credentialSecret="", pollInterval="0s"))["backup_target"]
    assert (result["url"], result["credential_secret"], result["poll_interval"], result["message"]) == (None, None, 0, None)


def test_missing_named_target_is_an_error():
    with pytest.raises(LonghornError) as caught:
        view(bt=None, target_name="offsite")
    assert "offsite" in str(caught.value)


def test_no_version_setting_means_current_longhorn():
    result = view(settings={})
    assert result["longhorn_version"] is None and result["legacy_settings"] is False
    assert result["backup_target"]["url"] == "s3://b@r/"


def test_legacy_settings_path():
    # ref §1.2: <= 1.7 the Settings are the truth; the CR (copied from them) still carries the status.
    stale_cr = target(backupTargetURL="s3://copied-late@us-east-1/", credentialSecret="x", pollInterval="5m0s")
    result = view(settings=LEGACY_SETTINGS, bt=stale_cr)
    assert result["longhorn_version"] == "v1.7.2" and result["legacy_settings"] is True
    assert result["backup_target"] == {"name": "default", "url": "s3://old@us-east-1/", "credential_secret": "old-creds",
                                       "poll_interval": 600, "available": True, "last_synced_at": "2026-11-22T01:59:00Z",
                                       "message": None}


def test_legacy_without_the_target_cr_reports_it_unavailable():
    result = view(settings=LEGACY_SETTINGS, bt=None)["backup_target"]
    assert result["url"] == "s3://old@us-east-1/" and result["available"] is False
    assert result["message"] == "BackupTarget default does not exist"


def test_legacy_has_only_the_default_target():
    with pytest.raises(LonghornError) as caught:
        view(settings=LEGACY_SETTINGS, bt=None, target_name="offsite")
    assert "offsite" in str(caught.value) and "v1.7.2" in str(caught.value)


def test_legacy_backups_without_target_label_count():
    items = [backup("b1", "v1", target=None, created="2026-11-22T01:00:00Z")]
    entry = view([volume("v1")], items, settings=LEGACY_SETTINGS)["volumes"][0]
    assert entry["last_completed_backup"]["name"] == "b1" and entry["last_completed_backup"]["backup_target"] is None


# --- system backups ---------------------------------------------------------------------------------

def test_system_backups_newest_first_and_last_ready():
    error = [{"type": "Error", "status": "True", "reason": "Upload", "message": "failed to upload: AccessDenied"}]
    items = [system_backup("old", created="2026-11-20T00:00:00Z"),
             system_backup("newer-ready", created="2026-11-21T00:00:00Z"),
             system_backup("failed", state="Error", created="", creation="2026-11-22T00:00:00Z", conditions=error),
             system_backup("running", state="Uploading", created="", creation="2026-11-22T01:00:00Z", version="")]
    result = view(system_backups=items)
    assert [s["name"] for s in result["system_backups"]] == ["running", "failed", "newer-ready", "old"]
    assert result["last_ready_system_backup"] == result["system_backups"][2]
    assert result["system_backups"][1] == {"name": "failed", "state": "Error", "created_at": "2026-11-22T00:00:00Z",
                                           "age_seconds": 7200, "version": "v1.10.2", "volume_backup_policy": "if-not-present",
                                           "error": "failed to upload: AccessDenied"}
    assert result["system_backups"][0]["version"] is None
    assert result["last_ready_system_backup"]["error"] is None and result["last_ready_system_backup"]["age_seconds"] == 26 * 3600


def test_synced_system_backup_version_from_label():
    item = system_backup("synced", state="Syncing", version="")
    item["metadata"]["labels"] = {"longhorn.io/version": "v1.9.2"}
    assert view(system_backups=[item])["system_backups"][0]["version"] == "v1.9.2"


def test_no_ready_system_backup():
    result = view(system_backups=[system_backup("x", state="Error")])
    assert result["last_ready_system_backup"] is None


def test_cleared_error_condition_is_not_an_error():
    item = system_backup("x", conditions=[{"type": "Error", "status": "False", "message": "old"}])
    assert view(system_backups=[item])["system_backups"][0]["error"] is None


def test_whole_view_keys_and_checked_at():
    result = view()
    assert result["checked_at"] == "2026-11-22T02:00:00Z"
    assert set(result) >= {"longhorn_version", "checked_at", "backup_target", "volumes", "system_backups", "last_ready_system_backup"}
    assert result["volumes"] == [] and result["system_backups"] == [] and result["last_ready_system_backup"] is None
