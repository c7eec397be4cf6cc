# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup gate's evaluation: every refusal scenario of issue 3, the max_age boundary, unbound volumes.

Inputs are built in the shapes longhorn_backup_info, minio_bucket_check and ansible.builtin.slurp return.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.longhorn_dr.plugins.filter import backup_gate_findings as gate

NOW = "2026-03-02T12:00:00Z"
HOUR = 3600
DAY = 86400
FORMAT = "homelab.longhorn_dr/cluster-state/v1"


def backup(name, age, state="Completed", error=None, snapshot_at=None):
    return {"name": name, "state": state, "created_at": "2026-03-02T11:00:00Z", "age_seconds": age,
            "snapshot_created_at": snapshot_at or "2026-03-02T11:00:00Z", "url": None, "size": 1024, "error": error}


def volume(name, pvc, last=None, completed=None, pv_status="Bound", last_pvc_ref_at=None, state="attached", actual_size=4096):
    return {"name": name, "size": 1024, "state": state, "robustness": "healthy", "access_mode": "rwo", "data_engine": "v1",
            "actual_size": actual_size,
            "pvc_namespace": "apps" if pvc else None, "pvc_name": pvc, "pv_name": name if pvc else None,
            "pv_status": pv_status if pvc else None, "last_pvc_ref_at": last_pvc_ref_at,
            "last_backup": last, "last_completed_backup": completed, "backup_count": 1 if completed else 0,
            "recurring_jobs": [], "recurring_job_groups": []}


def fresh_volume(name, pvc, backup_name, age=HOUR):
    entry = backup(backup_name, age)
    return volume(name, pvc, last=entry, completed=dict(entry))


def info_result(volumes, available=True, system_age=HOUR, system_backups=None):
    ready = {"name": "sb-1", "state": "Ready", "created_at": "2026-03-02T11:00:00Z", "age_seconds": system_age,
             "version": "v1.10.2", "volume_backup_policy": "disabled", "error": None} if system_age is not None else None
    return {"changed": False, "failed": False, "longhorn_version": "v1.10.2", "checked_at": NOW,
            "backup_target": {"name": "default", "url": "s3://backups@us-east-1/", "credential_secret": "creds",
                              "poll_interval": 300, "available": available, "last_synced_at": NOW,
                              "message": None if available else "failed to list system backups: SignatureDoesNotMatch"},
            "volumes": volumes,
            "system_backups": system_backups if system_backups is not None else ([ready] if ready else []),
            "last_ready_system_backup": ready}


def bucket_result(entries, readable=True, system_backups=("sb-1",), cluster_state=None):
    access = {"reachable": True, "credentials_valid": True, "bucket_exists": True, "readable": True, "error_code": None, "error": None}
    if not readable:
        access = {"reachable": True, "credentials_valid": False, "bucket_exists": None, "readable": False,
                  "error_code": "InvalidAccessKeyId", "error": "Failed to list objects in bucket backups: InvalidAccessKeyId"}
    return {"changed": False, "failed": False, "endpoint_url": "http://minio:9000", "bucket": "backups", "access": access,
            "backupstore_prefix": "backupstore/", "integrity": {"level": "structure"},
            "volumes": [{"name": name, "last_backup_name": backup_name, "last_backup_at": at, "last_backup_age": age,
                         "integrity_checked": True, "damaged_backups": [], "unreadable_backups": []}
                        for name, backup_name, at, age in entries] if readable else [],
            "system_backups": [{"name": name, "version": "v1.10.2", "checksum": "not_checked",
                                "backup_target_url": "s3://backups@us-east-1/"} for name in system_backups] if readable else [],
            "cluster_state": cluster_state}


def state_in_bucket(age=HOUR, found=True, fmt=FORMAT, error=None):
    return {"found": found, "key": "cluster-state/manifest.json", "exported_at": "2026-03-02T11:00:00Z" if found else None,
            "age_seconds": age if found else None, "format": fmt if found else None, "error": error}


def slurped(manifest):
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    return {"changed": False, "failed": False, "content": base64.b64encode(text.encode()).decode(), "encoding": "base64",
            "source": "/exports/manifest.json"}


VOLUMES = ("pvc-a", "pvc-b", "pvc-c")


def healthy():
    """Everything fresh: three bound volumes backed up an hour ago, in the bucket; system backup; export."""
    volumes = [fresh_volume(name, "data-" + name, "backup-" + name) for name in VOLUMES]
    bucket = bucket_result([(name, "backup-" + name, "2026-03-02T11:00:00Z", HOUR) for name in VOLUMES],
                           cluster_state=state_in_bucket())
    return info_result(volumes), bucket


def evaluate(info, bucket, cluster_state="bucket", **options):
    if cluster_state == "bucket":
        cluster_state = bucket["cluster_state"] if bucket else None
    return gate.backup_gate_findings(info, bucket=bucket, cluster_state=cluster_state, now=NOW, **options)


def reasons_by_volume(result):
    return {entry["volume"]: entry["reasons"] for entry in result["unprotected_volumes"]}


def other_findings(result):
    return [(item["scope"], item["reason"]) for item in result["findings"] if item["scope"] != "volume"]


# ---- the scenarios of issue 3 ----------------------------------------------------------------


def test_everything_fresh_passes():
    info, bucket = healthy()
    result = evaluate(info, bucket)
    assert result["passed"] is True, result["report"]
    assert result["findings"] == [] and result["unprotected_volumes"] == []
    assert [entry["volume"] for entry in result["protected_volumes"]] == list(VOLUMES)
    assert result["summary"].startswith("Backup gate passed: 3 bound volume(s) protected, system backup sb-1")
    assert result["report"][0] == "Backup gate PASSED (max_age 1d): 0 of 3 bound volume(s) unprotected, 0 other finding(s)"
    assert (result["max_age"], result["max_age_text"]) == (DAY, "1d")


def test_no_backups_at_all_refuses_naming_every_volume():
    # The real case: the CSI driver was broken and nothing had ever been backed up.
    volumes = [volume(name, "data-" + name) for name in VOLUMES]
    info = info_result(volumes, system_age=None)
    bucket = bucket_result([], system_backups=(), cluster_state=state_in_bucket(found=False))
    result = evaluate(info, bucket)
    assert result["passed"] is False
    assert reasons_by_volume(result) == {name: ["no backup"] for name in VOLUMES}
    assert other_findings(result) == [("system_backup", "no Ready system backup"), ("cluster_state", "does not exist")]
    assert "Backup gate refused (max_age 1d): 3 unprotected volume(s): apps/data-pvc-a (pvc-a): no backup" in result["summary"]
    assert result["messages"] == ["apps/data-pvc-a (pvc-a): no backup", "apps/data-pvc-b (pvc-b): no backup",
                                  "apps/data-pvc-c (pvc-c): no backup", "system backup: no Ready system backup",
                                  "cluster-state export cluster-state/manifest.json: does not exist"]
    assert "  - apps/data-pvc-b (pvc-b): no backup" in result["report"]
    assert result["report"][0] == "Backup gate REFUSED (max_age 1d): 3 of 3 bound volume(s) unprotected, 2 other finding(s)"


def test_one_stale_volume():
    info, bucket = healthy()
    info["volumes"][1]["last_completed_backup"]["age_seconds"] = 2 * DAY + 3 * HOUR
    result = evaluate(info, bucket)
    assert result["passed"] is False
    assert reasons_by_volume(result) == {"pvc-b": ["last completed backup backup-pvc-b is 2d3h old (max_age 1d)"]}
    assert other_findings(result) == []
    assert [entry["volume"] for entry in result["protected_volumes"]] == ["pvc-a", "pvc-c"]


def test_max_age_boundary_is_inclusive():
    info, bucket = healthy()
    info["volumes"][0]["last_completed_backup"]["age_seconds"] = DAY
    assert evaluate(info, bucket)["passed"] is True
    info["volumes"][0]["last_completed_backup"]["age_seconds"] = DAY + 1
    assert reasons_by_volume(evaluate(info, bucket)) == {"pvc-a": ["last completed backup backup-pvc-a is 1d old (max_age 1d)"]}
    assert evaluate(info, bucket, max_age=DAY + 1)["passed"] is True
    assert evaluate(info, bucket, max_age="1d1s")["passed"] is True


def test_failed_backup_without_a_completed_one():
    info, bucket = healthy()
    failed = backup("backup-bad", 60, state="Error", error="failed to create snapshot: CSI driver unavailable")
    info["volumes"][2] = volume("pvc-c", "data-pvc-c", last=failed)
    result = evaluate(info, bucket)
    assert reasons_by_volume(result) == {
        "pvc-c": ["no completed backup; last backup backup-bad failed: failed to create snapshot: CSI driver unavailable"]}


def test_newest_backup_failed_after_a_fresh_one():
    info, bucket = healthy()
    info["volumes"][0]["last_backup"] = backup("backup-later", 60, state="Error", error="")
    result = evaluate(info, bucket)
    assert reasons_by_volume(result) == {"pvc-a": ["last backup backup-later failed: Error, no error message"]}
    relaxed = evaluate(info, bucket, fail_on_failed_backup=False)
    assert relaxed["passed"] is True


def test_backup_in_progress_is_not_a_completed_backup():
    info, bucket = healthy()
    info["volumes"][0] = volume("pvc-a", "data-pvc-a", last=backup("backup-run", 5, state="InProgress"))
    assert reasons_by_volume(evaluate(info, bucket)) == {"pvc-a": ["no completed backup (backup backup-run is InProgress)"]}


def test_target_unavailable_wrong_credentials():
    info, _bucket = healthy()
    info["backup_target"].update(available=False, message="failed to list system backups: SignatureDoesNotMatch")
    bucket = bucket_result([], readable=False)
    result = evaluate(info, bucket, cluster_state=None)
    assert result["passed"] is False
    assert ("backup_target", "not available: failed to list system backups: SignatureDoesNotMatch") in other_findings(result)
    assert ("bucket", "cannot be read: Failed to list objects in bucket backups: InvalidAccessKeyId") in other_findings(result)
    # No backup can be confirmed in an unreadable bucket: every bound volume is unprotected.
    assert reasons_by_volume(result) == {
        name: ["cannot confirm that backup backup-%s is in the bucket (the bucket could not be read)" % name] for name in VOLUMES}
    assert "backup target default (s3://backups@us-east-1/): not available:" in result["summary"]


def test_no_system_backup_and_a_stale_or_failed_one():
    info, bucket = healthy()
    failed = {"name": "sb-2", "state": "Error", "created_at": None, "age_seconds": None, "version": "v1.10.2",
              "volume_backup_policy": "always", "error": "volume backup failed"}
    info["system_backups"] = [failed]
    info["last_ready_system_backup"] = None
    assert other_findings(evaluate(info, bucket)) == [
        ("system_backup", "no Ready system backup (newest: sb-2, Error: volume backup failed)")]
    info, bucket = healthy()
    info["last_ready_system_backup"]["age_seconds"] = 3 * DAY
    assert other_findings(evaluate(info, bucket)) == [("system_backup", "newest Ready system backup is 3d old (max_age 1d)")]


def test_system_backup_missing_from_the_bucket():
    info, bucket = healthy()
    bucket["system_backups"] = [{"name": "other", "version": "v1.10.2"}]
    assert other_findings(evaluate(info, bucket)) == [
        ("system_backup", "Ready in the cluster but not in the bucket (the bucket has: other)")]


def test_cluster_state_too_old_missing_unknown_format_or_unreadable():
    info, bucket = healthy()
    cases = [
        (state_in_bucket(age=2 * DAY), "exported at 2026-03-02T11:00:00Z, 2d old (max_age 1d)"),
        (state_in_bucket(found=False), "does not exist"),
        (state_in_bucket(fmt="homelab.longhorn_dr/cluster-state/v0"),
         "unknown format 'homelab.longhorn_dr/cluster-state/v0' (expected homelab.longhorn_dr/cluster-state/v1)"),
        (state_in_bucket(found=True, error="cluster-state/manifest.json is not valid JSON: x"),
         "cannot be read: cluster-state/manifest.json is not valid JSON: x"),
    ]
    for state, reason in cases:
        result = evaluate(info, bucket, cluster_state=state)
        assert other_findings(result) == [("cluster_state", reason)], state
        assert result["findings"][0]["subject"] == "cluster-state export cluster-state/manifest.json"
    result = evaluate(info, bucket, cluster_state=None)
    assert other_findings(result) == [("cluster_state", "the cluster-state export was not checked")]


def test_cluster_state_from_a_local_manifest():
    info, bucket = healthy()
    fresh = slurped({"format": FORMAT, "exported_at": "2026-03-02T11:30:00.123456789Z", "files": {}, "volumes": []})
    result = evaluate(info, bucket, cluster_state=fresh)
    assert result["passed"] is True, result["report"]
    assert result["cluster_state"] == {"format": FORMAT, "exported_at": "2026-03-02T11:30:00Z", "age_seconds": 1800,
                                       "location": "/exports/manifest.json"}
    old = slurped({"format": FORMAT, "exported_at": "2026-02-28T12:00:00Z"})
    assert other_findings(evaluate(info, bucket, cluster_state=old)) == [
        ("cluster_state", "exported at 2026-02-28T12:00:00Z, 2d old (max_age 1d)")]
    missing = {"changed": False, "failed": False, "msg": "file not found: /exports/manifest.json"}
    assert other_findings(evaluate(info, bucket, cluster_state=missing, cluster_state_location="/exports/manifest.json")) == [
        ("cluster_state", "cannot be read (failed: file not found: /exports/manifest.json)")]
    for broken, reason in ((slurped("{not json"), "is not valid JSON: "), (slurped("[1]"), "is not a JSON object"),
                           (slurped({"format": FORMAT}), "has no valid exported_at time (None)")):
        findings = other_findings(evaluate(info, bucket, cluster_state=broken))
        assert len(findings) == 1 and findings[0][1].startswith(reason), findings


# ---- the bucket side ---------------------------------------------------------------------------


def test_completed_backup_not_in_the_bucket():
    info, bucket = healthy()
    bucket["volumes"][0].update(last_backup_name="backup-older", last_backup_at="2026-03-01T11:00:00Z", last_backup_age=DAY + HOUR)
    bucket["volumes"] = [entry for entry in bucket["volumes"] if entry["name"] != "pvc-b"]
    result = evaluate(info, bucket)
    assert reasons_by_volume(result) == {
        "pvc-a": ["backup backup-pvc-a is not in the bucket (bucket's newest: backup-older, 1d1h old)"],
        "pvc-b": ["backup backup-pvc-b is not in the bucket (the bucket has no complete backup of this volume)"],
    }


def test_a_newer_complete_backup_in_the_bucket_is_enough():
    info, bucket = healthy()
    bucket["volumes"][0].update(last_backup_name="backup-newer", last_backup_at="2026-03-02T11:50:00Z", last_backup_age=600)
    assert evaluate(info, bucket)["passed"] is True


@pytest.mark.parametrize("bucket, reason", [
    (None, "bucket check not checked"),
    ({"changed": False, "failed": False, "msg": "Invalid S3 connection options: bad endpoint", "bucket": "b"},
     "bucket check failed: Invalid S3 connection options: bad endpoint"),
    ({"changed": False, "skipped": True, "false_condition": "backup_gate_endpoint_url | length > 0"},
     "bucket check skipped (backup_gate_endpoint_url | length > 0)"),
])
def test_bucket_check_that_did_not_run_fails_closed(bucket, reason):
    info, healthy_bucket = healthy()
    result = evaluate(info, bucket, cluster_state=healthy_bucket["cluster_state"])
    assert ("bucket", reason) in other_findings(result)
    assert len(result["unprotected_volumes"]) == 3


# ---- Longhorn side failures and unbound volumes ---------------------------------------------------


def test_info_module_failure_fails_closed():
    _info, bucket = healthy()
    failed = {"changed": False, "failed": False, "msg": "Failed to reach the Kubernetes API: connection refused"}
    result = evaluate(failed, bucket)
    assert result["passed"] is False and result["volumes_checked"] is False
    assert other_findings(result) == [("longhorn", "cannot read the backup state (longhorn_backup_info failed: Failed to reach "
                                                   "the Kubernetes API: connection refused); no volume can be confirmed as protected")]
    assert result["report"][0].startswith("Backup gate REFUSED (max_age 1d): volumes unknown")


def test_unbound_volumes_are_reported_not_blocking():
    info, bucket = healthy()
    info["volumes"].append(volume("pvc-free", None, state="detached", actual_size=0))
    info["volumes"].append(volume("pvc-released", "old-claim", pv_status="Released", state="detached", actual_size=0))
    info["volumes"].append(volume("pvc-gone", "gone-claim", last_pvc_ref_at="2026-03-01T00:00:00Z", state="detached",
                                  actual_size=0))
    result = evaluate(info, bucket)
    assert result["passed"] is True, result["report"]
    assert [(entry["volume"], entry["note"]) for entry in result["unbound_volumes"]] == [
        ("pvc-gone", "not bound to a PVC (PVC apps/gone-claim is gone) and holds no data; reported, not required"),
        ("pvc-released", "not bound to a PVC (PVC apps/old-claim is gone) and holds no data; reported, not required"),
        ("pvc-free", "not bound to a PVC and holds no data; reported, not required"),
    ]
    assert result["report"][-1] == ("Not bound to a PVC (reported, not blocking): pvc-gone (detached), pvc-released (detached), "
                                    "pvc-free (detached)")


def test_a_pvc_without_a_pv_status_counts_as_bound():
    info, bucket = healthy()
    info["volumes"].append(volume("pvc-unclear", "claim", pv_status=None))
    assert reasons_by_volume(evaluate(info, bucket)) == {"pvc-unclear": ["no backup"]}


def test_inputs_are_not_modified():
    info, bucket = healthy()
    before = copy.deepcopy((info, bucket))
    evaluate(info, bucket)
    assert (info, bucket) == before


@pytest.mark.parametrize("max_age", ["24 hours", 0, "", None])
def test_bad_max_age_is_named(max_age):
    info, bucket = healthy()
    with pytest.raises(AnsibleFilterError, match="max_age"):
        evaluate(info, bucket, max_age=max_age)


def test_human_age():
    assert [gate.human_age(value) for value in (-5, 0, 45, 90, 3600, 3660, 183600, 183661, 90061)] == [
        "0s", "0s", "45s", "1m30s", "1h", "1h1m", "2d3h", "2d3h", "1d1h"]


def test_documentation_is_yaml_and_names_the_filter():
    doc = yaml.safe_load(gate.DOCUMENTATION)
    assert doc["name"] == "backup_gate_findings"
    assert set(doc["options"]) == {"_input", "bucket", "cluster_state", "cluster_state_location", "max_age",
                                   "fail_on_failed_backup", "now", "block_check", "accepted_unclaimed_volumes",
                                   "future_tolerance"}
    yaml.safe_load(gate.EXAMPLES)
    assert "passed" in yaml.safe_load(gate.RETURN)["_value"]["contains"]
    assert gate.FilterModule().filters() == {"backup_gate_findings": gate.backup_gate_findings}
