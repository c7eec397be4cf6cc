# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The gate under attack (issue 10, part 1): states it used to pass although they cannot be restored.

Each test builds the module results the role feeds the filter and names the finding it must raise:
a block missing from the bucket, a backup stamped in the future, an unclaimed volume holding data,
a system backup that is damaged or recorded for another target, and the explicit opt-outs.
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from tests.unit.plugins.filter.test_backup_gate_findings import (
    DAY,
    HOUR,
    backup,
    evaluate,
    healthy,
    other_findings,
    reasons_by_volume,
    volume,
)


def bucket_volume(bucket, name):
    return next(entry for entry in bucket["volumes"] if entry["name"] == name)


# ---- finding 1: blocks ------------------------------------------------------------------------


def test_a_block_missing_from_the_counted_backup_refuses():
    info, bucket = healthy()
    bucket_volume(bucket, "pvc-b")["damaged_backups"] = [{"backup": "backup-pvc-b", "missing_blocks": 1, "corrupt_blocks": 0}]
    result = evaluate(info, bucket)
    assert result["passed"] is False
    assert reasons_by_volume(result) == {
        "pvc-b": ["backup backup-pvc-b cannot be restored: 1 block(s) missing from the bucket"]}


def test_corrupt_blocks_and_an_unreadable_backup_cfg_refuse():
    info, bucket = healthy()
    bucket_volume(bucket, "pvc-a")["damaged_backups"] = [{"backup": "backup-pvc-a", "missing_blocks": 0, "corrupt_blocks": 2}]
    bucket_volume(bucket, "pvc-c")["unreadable_backups"] = ["backup-pvc-c"]
    assert reasons_by_volume(evaluate(info, bucket)) == {
        "pvc-a": ["backup backup-pvc-a cannot be restored: 2 corrupt block(s)"],
        "pvc-c": ["backup backup-pvc-c cannot be restored: its backup cfg in the bucket cannot be read"]}


def test_damage_in_an_older_backup_does_not_block():
    info, bucket = healthy()
    bucket_volume(bucket, "pvc-a")["damaged_backups"] = [{"backup": "backup-old", "missing_blocks": 3, "corrupt_blocks": 0}]
    assert evaluate(info, bucket)["passed"] is True


def test_a_bucket_check_without_blocks_refuses_unless_opted_out():
    info, bucket = healthy()
    bucket["integrity"] = {"level": "none"}
    for entry in bucket["volumes"]:
        entry["integrity_checked"] = False
    refused = evaluate(info, bucket)
    assert refused["passed"] is False
    assert ("bucket", "the bucket check ran with integrity none, which does not look at blocks; run it with integrity "
            "structure (or full), or opt out of the block check explicitly") in other_findings(refused)
    assert all("cannot confirm that the blocks of backup" in reasons[0] for reasons in reasons_by_volume(refused).values())

    waived = evaluate(info, bucket, block_check=False)
    assert waived["passed"] is True, waived["report"]
    assert waived["waivers"] == ["block check turned off (block_check=false, bucket integrity none): blocks missing from "
                                 "the bucket are not detected"]
    assert "Waived by the user (printed and logged):" in waived["report"]
    assert "WAIVED: block check turned off" in waived["summary"]


def test_a_volume_whose_cfgs_were_not_all_read_is_not_confirmed():
    info, bucket = healthy()
    bucket_volume(bucket, "pvc-a")["integrity_checked"] = False
    assert reasons_by_volume(evaluate(info, bucket)) == {
        "pvc-a": ["cannot confirm that the blocks of backup backup-pvc-a are in the bucket (the bucket check did not read "
                  "all of this volume's backup cfgs)"]}


# ---- finding 2: times in the future -----------------------------------------------------------


def test_a_backup_stamped_in_the_future_is_not_fresh():
    info, bucket = healthy()
    future = backup("backup-pvc-a", -96809334)
    info["volumes"][0] = volume("pvc-a", "data-pvc-a", last=future, completed=dict(future))
    reasons = reasons_by_volume(evaluate(info, bucket))["pvc-a"]
    assert reasons[0].startswith("last completed backup backup-pvc-a is dated 1120d")
    assert "in the future (more than the 300s tolerated); check the clocks (NTP)" in reasons[0]


def test_small_clock_skew_is_tolerated_and_the_tolerance_is_an_option():
    info, bucket = healthy()
    skewed = backup("backup-pvc-a", -120)
    info["volumes"][0] = volume("pvc-a", "data-pvc-a", last=skewed, completed=dict(skewed))
    assert evaluate(info, bucket)["passed"] is True
    assert "pvc-a" in reasons_by_volume(evaluate(info, bucket, future_tolerance=60))


def test_the_bucket_copy_in_the_future_refuses():
    info, bucket = healthy()
    bucket_volume(bucket, "pvc-b")["last_backup_age"] = -DAY
    assert reasons_by_volume(evaluate(info, bucket))["pvc-b"][0].startswith("backup backup-pvc-b in the bucket is dated 1d")


def test_system_backup_and_export_in_the_future_refuse():
    info, bucket = healthy()
    info["last_ready_system_backup"]["age_seconds"] = -2 * HOUR
    bucket["cluster_state"]["age_seconds"] = -2 * HOUR
    found = dict(other_findings(evaluate(info, bucket)))
    assert "dated 2h in the future" in found["system_backup"]
    assert "dated 2h in the future" in found["cluster_state"]


@pytest.mark.parametrize("tolerance", [-1, "5m", True, 1.5])
def test_a_bad_tolerance_is_named(tolerance):
    info, bucket = healthy()
    with pytest.raises(AnsibleFilterError, match="future_tolerance: .* is not a whole number of seconds"):
        evaluate(info, bucket, future_tolerance=tolerance)


# ---- finding 5: unclaimed volumes with data --------------------------------------------------


def test_an_unclaimed_volume_with_data_and_no_backup_refuses_and_can_be_accepted():
    info, bucket = healthy()
    info["volumes"].append(volume("pvc-orphan", None, state="detached", actual_size=52428800))
    refused = evaluate(info, bucket)
    assert refused["passed"] is False
    assert [(item["scope"], item["subject"]) for item in refused["findings"]] == [("unclaimed_volume", "unclaimed volume pvc-orphan")]
    assert "it holds 52428800 bytes, and it would be lost on teardown: no backup" in refused["findings"][0]["reason"]
    assert refused["unclaimed_volumes"] == [{"volume": "pvc-orphan", "pvc": None, "actual_size": 52428800,
                                             "reasons": ["no backup"], "accepted": False}]
    assert "Unclaimed volumes holding data (no PVC, lost on teardown):" in refused["report"]

    accepted = evaluate(info, bucket, accepted_unclaimed_volumes=["pvc-orphan"])
    assert accepted["passed"] is True, accepted["report"]
    assert accepted["waivers"] == ["unclaimed volume pvc-orphan accepted (accepted_unclaimed_volumes): it holds 52428800 "
                                   "bytes that is lost on teardown (no backup)"]


def test_a_retained_pv_whose_claim_is_gone_needs_a_backup():
    info, bucket = healthy()
    info["volumes"].append(volume("pvc-kept", "old-claim", pv_status="Released", state="detached"))
    result = evaluate(info, bucket)
    assert [item["subject"] for item in result["findings"]] == ["unclaimed volume pvc-kept (PVC apps/old-claim is gone)"]


def test_an_unclaimed_volume_of_unknown_size_counts_as_holding_data():
    info, bucket = healthy()
    info["volumes"].append(volume("pvc-unknown", None, actual_size=None))
    assert evaluate(info, bucket)["findings"][0]["scope"] == "unclaimed_volume"


def test_an_unclaimed_volume_with_a_fresh_restorable_backup_passes():
    info, bucket = healthy()
    fresh = backup("backup-kept", HOUR)
    info["volumes"].append(volume("pvc-kept", None, last=fresh, completed=dict(fresh)))
    bucket["volumes"].append({"name": "pvc-kept", "last_backup_name": "backup-kept", "last_backup_at": "2026-03-02T11:00:00Z",
                              "last_backup_age": HOUR, "integrity_checked": True, "damaged_backups": [], "unreadable_backups": []})
    result = evaluate(info, bucket)
    assert result["passed"] is True, result["report"]
    assert result["unbound_volumes"][0]["note"] == "not bound to a PVC; holds data and has a fresh, restorable backup"


@pytest.mark.parametrize("accepted", ["pvc-orphan", [1], {"pvc-orphan": True}])
def test_a_bad_accepted_list_is_named(accepted):
    info, bucket = healthy()
    with pytest.raises(AnsibleFilterError, match="accepted_unclaimed_volumes: .* is not a list of volume names"):
        evaluate(info, bucket, accepted_unclaimed_volumes=accepted)


# ---- system backups in the bucket ---------------------------------------------------------------


@pytest.mark.parametrize("checksum, reason", [
    ("missing_zip", "its system-backup.zip is missing from the bucket"),
    ("mismatch", "its system-backup.zip fails the SHA-256 checksum of its cfg (damaged)"),
])
def test_a_damaged_system_backup_refuses(checksum, reason):
    info, bucket = healthy()
    bucket["system_backups"][0]["checksum"] = checksum
    assert other_findings(evaluate(info, bucket)) == [("system_backup", reason)]


@pytest.mark.parametrize("url", ["s3://other-bucket@us-east-1/", "s3://backups@us-east-1/cluster-b/", "nfs://nas:/export", None])
def test_a_system_backup_recorded_for_another_target_refuses(url):
    info, bucket = healthy()
    bucket["system_backups"][0]["backup_target_url"] = url
    [(scope, reason)] = other_findings(evaluate(info, bucket))
    assert scope == "system_backup"
    assert ("records target %s, not the bucket checked (backups, path '')" % url) in reason if url else "records no BackupTargetURL" in reason


def test_a_system_backup_under_a_prefix_matches_its_prefix():
    info, bucket = healthy()
    bucket["backupstore_prefix"] = "cluster-a/backupstore/"
    bucket["system_backups"][0]["backup_target_url"] = "s3://backups@us-east-1/cluster-a/"
    assert evaluate(info, bucket)["passed"] is True


# ---- missing evidence ----------------------------------------------------------------------------


@pytest.mark.parametrize("bucket_result, expected", [
    ({"failed": True, "msg": "The module minio_bucket_check timed out after 600 seconds"}, "timed out after 600 seconds"),
    ({"failed": True, "msg": "Failed to list objects in bucket backups: the listing was cut short (IsTruncated without "
      "NextContinuationToken)"}, "the listing was cut short"),
    ({"changed": False, "access": {"readable": False, "error": "Failed to list objects in bucket backups: SlowDown"},
      "volumes": []}, "cannot be read: Failed to list objects in bucket backups: SlowDown"),
])
def test_missing_bucket_evidence_refuses_naming_the_cause(bucket_result, expected):
    info, _bucket = healthy()
    result = evaluate(info, bucket_result, cluster_state=None)
    assert result["passed"] is False
    assert any(expected in message for message in result["messages"]), result["messages"]


@pytest.mark.parametrize("info_result, expected", [
    ({"failed": True, "msg": "Failed to list Volume: the listing was cut short (continue token)"}, "the listing was cut short"),
    ({"failed": True, "msg": "Failed to list Backup: (503) Service Unavailable"}, "Service Unavailable"),
    ({"failed": True, "msg": "The module longhorn_backup_info timed out after 600 seconds"}, "timed out"),
])
def test_missing_cluster_evidence_refuses_naming_the_cause(info_result, expected):
    _info, bucket = healthy()
    result = evaluate(info_result, bucket)
    assert result["passed"] is False
    assert result["findings"][0]["scope"] == "longhorn" and expected in result["findings"][0]["reason"]
