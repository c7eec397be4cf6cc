# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""minio_bucket_check in real ansible-playbook runs against the lab's bucket (issue 3, Bucket check).

Buckets are filled with the lab's BackupStore writer (the layout Longhorn writes), damaged with
the lab's fault injection, and every playbook output is scanned for the lab's secret key.
"""

from __future__ import annotations

import base64
import datetime
import json
import random
import time

import pytest

from tests.lab.context import LONGHORN_NAMESPACE
from tests.lab.longhorn.backupstore import BackupStore

pytestmark = pytest.mark.integration

BLOCK = 2 * 1024 * 1024
SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLE-session-token-never-shown"
WRONG_SECRET = "wrong-secret-0123456789-never-shown"
TASK = "Check the bucket"


def labels(name, namespace="apps"):
    status = {"pvName": name, "pvStatus": "Bound", "namespace": namespace, "pvcName": "data-" + name,
              "lastPVCRefAt": "", "workloadsStatus": None, "lastPodRefAt": ""}
    return {"KubernetesStatus": json.dumps(status), "longhorn.io/volume-access-mode": "rwo"}


def image(seed, blocks):
    rng = random.Random(seed)
    return b"".join(rng.randbytes(BLOCK // 2) + bytes(BLOCK // 2) for _block in range(blocks))


def backup(store, volume, name, data, taken=None, compression="lz4"):
    taken = taken or datetime.datetime.now(datetime.timezone.utc)
    writer = store.begin_backup(volume, name, compression=compression, volume_size=len(data), labels=labels(volume))
    writer.write_image(data)
    writer.finish(snapshot_name="snap-" + name, snapshot_created_at=taken, created_at=taken, volume_size=len(data),
                  labels=labels(volume))


def populate(lab, volumes, backups=2, blocks=2):
    """``volumes`` volumes with ``backups`` backups each; each later backup changes the first block."""
    store = BackupStore(lab.s3.client(), lab.bucket)
    for index, volume in enumerate(volumes):
        data = bytearray(image(index, blocks))
        for number in range(backups):
            if number:
                data[:BLOCK] = image(1000 * index + number, 1)
            backup(store, volume, "backup-%s-%d" % (volume[-4:], number), bytes(data), compression=("lz4", "gzip")[index % 2])
    return store


def bucket_keys(lab):
    client = lab.s3.client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=lab.bucket):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


def configure_backup_target(lab):
    """Point the lab's default BackupTarget at the bucket, which lab.damage_block goes through."""
    values = {"AWS_ACCESS_KEY_ID": lab.access_key, "AWS_SECRET_ACCESS_KEY": lab.secret_key, "AWS_ENDPOINTS": lab.s3_endpoint}
    lab.store.create("secrets", {"metadata": {"name": "bucket-check-credentials", "namespace": LONGHORN_NAMESPACE},
                                 "type": "Opaque",
                                 "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}})
    rtype = lab.store.registry.by_plural("backuptargets", "longhorn.io")

    def point(obj):
        obj["spec"]["backupTargetURL"] = lab.backup_target_url
        obj["spec"]["credentialSecret"] = "bucket-check-credentials"
    lab.store.modify(rtype, LONGHORN_NAMESPACE, "default", point)


@pytest.fixture
def check(run_playbook, lab):
    """Run a bucket-check playbook; every output is scanned for credentials."""
    def run(playbook="minio_bucket_check_once.yml", secrets=(), **kwargs):
        result = run_playbook(playbook, **kwargs)
        for secret in (lab.secret_key,) + tuple(secrets):
            assert not result.mentions(secret), "a credential appears in the output of %s" % playbook
        return result
    return run


def test_healthy_bucket_inventory_in_the_usual_rhythm(check, lab):
    volumes = ["pvc-0001-aaaa", "pvc-0002-bbbb", "pvc-0003-cccc"]
    store = populate(lab, volumes)
    store.write_system_backup("v1.10.2", "system-backup-1", b"PK" + bytes(4096), manager_image="m", engine_image="e",
                              git_commit="c", target_url=lab.backup_target_url,
                              created_at=datetime.datetime.now(datetime.timezone.utc))
    before = bucket_keys(lab)
    result = check("minio_bucket_check.yml", extra_vars={
        "bucket_check_integrity": "full", "bucket_check_max_age": "1h", "bucket_check_expected_volumes": volumes,
        "bucket_check_write_probe": True})
    assert result.rc == 0, result
    assert result.changed() == 0, result
    report = result.task_result(TASK)
    assert report["changed"] is False
    assert [volume["name"] for volume in report["volumes"]] == volumes
    for index, volume in enumerate(report["volumes"]):
        assert (volume["pvc_namespace"], volume["pvc_name"]) == ("apps", "data-" + volumes[index])
        assert (volume["backup_count"], volume["incomplete_backups"]) == (2, 0)
        assert volume["last_backup_name"] == "backup-%s-1" % volumes[index][-4:]
        assert volume["compression"] == ("lz4", "gzip")[index % 2]
        # Two blocks in the first backup, one new block in the second.
        assert (volume["block_count"], volume["data_stored"], volume["size"]) == (3, 3 * BLOCK, 2 * BLOCK)
    assert report["problems"] == []
    assert report["stale"] == [] and report["missing"] == []
    assert [(item["name"], item["checksum"]) for item in report["system_backups"]] == [("system-backup-1", "ok")]
    integrity = report["integrity"]
    assert (integrity["checked_blocks"], integrity["missing_blocks"], integrity["corrupt_blocks"]) == (9, 0, 0)
    assert report["capacity"]["object_count"] == len(before)
    assert report["write_probe"]["ok"] is True
    assert result.task_result("Check the bucket (CHECK)")["write_probe"]["skipped_reason"] == "check mode"
    assert bucket_keys(lab) == before


def test_credentials_and_bucket_failures_are_told_apart(check, lab):
    populate(lab, ["pvc-0001-aaaa"], backups=1, blocks=1)
    runs = {
        "InvalidAccessKeyId": {"bucket_check_access_key": "AKIAIOSFODNN7NOTREAL"},
        "SignatureDoesNotMatch": {"bucket_check_secret_key": WRONG_SECRET},
        "NoSuchBucket": {"bucket_check_bucket": "no-such-bucket"},
    }
    for code, extra_vars in runs.items():
        result = check(extra_vars=extra_vars, secrets=(WRONG_SECRET,))
        assert result.rc == 0, result  # reported, not failed, without fail_on
        access = result.task_result(TASK)["access"]
        assert access["error_code"] == code, result
        assert access["readable"] is False
        assert access["credentials_valid"] is (code == "NoSuchBucket")
        assert access["bucket_exists"] is (False if code == "NoSuchBucket" else None)
        assert access["error"].startswith("Failed to list objects in bucket ")

    failed = check(extra_vars={"bucket_check_secret_key": WRONG_SECRET, "bucket_check_fail_on": ["unreachable", "missing"],
                               "bucket_check_expected_volumes": ["pvc-0001-aaaa"]}, secrets=(WRONG_SECRET,))
    assert failed.rc != 0, failed
    report = failed.task_result(TASK)
    assert report["failed"] is True
    assert report["msg"] == ("Bucket check failed on unreachable: Failed to list objects in bucket %s: SignatureDoesNotMatch; "
                             "missing: 1 expected volume(s) without a complete backup in the bucket (pvc-0001-aaaa)" % lab.bucket)


def test_damaged_blocks_are_found(check, lab):
    populate(lab, ["pvc-0001-aaaa", "pvc-0002-bbbb", "pvc-0003-cccc"])
    configure_backup_target(lab)
    corrupted = lab.damage_block("pvc-0001-aaaa", mode="corrupt")
    deleted = lab.damage_block("pvc-0002-bbbb", "backup-bbbb-0", mode="delete")

    structure = check(extra_vars={"bucket_check_integrity": "structure"})
    assert structure.rc == 0, structure
    integrity = structure.task_result(TASK)["integrity"]
    assert (integrity["missing_blocks"], integrity["corrupt_blocks"], integrity["checked_blocks"]) == (1, 0, 9)
    assert integrity["missing"][0]["key"] == deleted
    # The deleted block is the first block of backup 0, which backup 1 replaced: only backup 0 is damaged.
    assert integrity["damaged_backups"] == [{"volume": "pvc-0002-bbbb", "backup": "backup-bbbb-0"}]

    full = check(extra_vars={"bucket_check_integrity": "full", "bucket_check_fail_on": ["integrity"]})
    assert full.rc != 0, full
    report = full.task_result(TASK)
    integrity = report["integrity"]
    assert (integrity["missing_blocks"], integrity["corrupt_blocks"], integrity["checked_blocks"]) == (1, 1, 8)
    assert integrity["corrupt"][0]["key"] == corrupted
    assert integrity["corrupt"][0]["backups"] == ["backup-aaaa-1"]
    assert report["msg"] == ("Bucket check failed on integrity: 1 missing block(s); 1 corrupt block(s); 2 damaged backup(s): "
                             "pvc-0001-aaaa/backup-aaaa-1, pvc-0002-bbbb/backup-bbbb-0")

    sampled = check(extra_vars={"bucket_check_integrity": "full", "bucket_check_sample_percent": 50,
                                "bucket_check_sample_seed": 11})
    again = check(extra_vars={"bucket_check_integrity": "full", "bucket_check_sample_percent": 50,
                              "bucket_check_sample_seed": 11})
    first, second = (run.task_result(TASK)["integrity"] for run in (sampled, again))
    assert first["sample_seed"] == 11 and first["checked_blocks"] < 8
    assert (first["checked_blocks"], first["corrupt"]) == (second["checked_blocks"], second["corrupt"])


def test_interrupted_backup_does_not_count_as_fresh(check, lab):
    store = BackupStore(lab.s3.client(), lab.bucket)
    two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    backup(store, "pvc-0001-aaaa", "backup-complete", image(1, 2), taken=two_hours_ago)
    backup(store, "pvc-0002-bbbb", "backup-fresh", image(2, 1))
    time.sleep(1.1)  # the stub cfg is newer than the last complete one
    writer = store.begin_backup("pvc-0001-aaaa", "backup-interrupted", compression="lz4", volume_size=2 * BLOCK,
                                labels=labels("pvc-0001-aaaa"))
    writer.upload_block(0, image(3, 1))
    writer.abort()  # as if the engine crashed: the stub and one block stay, the lock goes

    result = check(extra_vars={"bucket_check_max_age": "1h", "bucket_check_expected_volumes": ["pvc-0001-aaaa", "pvc-0002-bbbb"],
                               "bucket_check_fail_on": ["stale"]})
    assert result.rc != 0, result
    report = result.task_result(TASK)
    volume = report["volumes"][0]
    assert volume["name"] == "pvc-0001-aaaa"
    assert (volume["last_backup_name"], volume["backup_count"], volume["incomplete_backups"]) == ("backup-complete", 1, 1)
    assert volume["last_backup_at"] == two_hours_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert volume["last_backup_age"] >= 7200
    assert report["stale"] == ["pvc-0001-aaaa"]
    assert report["missing"] == []
    assert [(problem["volume"], problem["kind"]) for problem in report["problems"]] == [("pvc-0001-aaaa", "incomplete_backup")]
    assert report["msg"] == "Bucket check failed on stale: 1 volume(s) without a complete backup newer than 1h (pvc-0001-aaaa)"


def test_check_mode_never_runs_the_write_probe(check, lab):
    populate(lab, ["pvc-0001-aaaa"], backups=1, blocks=1)
    before = bucket_keys(lab)
    # Every request for a probe object is refused: a probe that ran would have to report it.
    lab.s3_fault("error", status=403, code="AccessDenied", paths="*.longhorn-dr-write-probe-*")

    checked = check(extra_vars={"bucket_check_write_probe": True}, check=True)
    assert checked.rc == 0, checked
    report = checked.task_result(TASK)
    assert report["write_probe"]["performed"] is False
    assert report["write_probe"]["skipped_reason"] == "check mode"
    assert report["problems"] == []
    assert bucket_keys(lab) == before

    applied = check(extra_vars={"bucket_check_write_probe": True, "bucket_check_fail_on": ["problems"]})
    assert applied.rc != 0, applied
    report = applied.task_result(TASK)
    assert (report["write_probe"]["performed"], report["write_probe"]["error_code"]) == (True, "AccessDenied")
    assert report["msg"] == "Bucket check failed on problems: 1 (write_probe_failed)"
    lab.clear_faults()
    assert bucket_keys(lab) == before


def test_lifecycle_rules_are_flagged(check, lab):
    populate(lab, ["pvc-0001-aaaa"], backups=1, blocks=1)
    lab.s3.client().put_bucket_lifecycle_configuration(Bucket=lab.bucket, LifecycleConfiguration={"Rules": [
        {"ID": "expire-backups", "Status": "Enabled", "Filter": {"Prefix": "backupstore/"}, "Expiration": {"Days": 30}},
        {"ID": "expire-exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"}, "Expiration": {"Days": 7}},
    ]})
    result = check(extra_vars={"bucket_check_fail_on": ["problems"]})
    assert result.rc != 0, result
    report = result.task_result(TASK)
    assert [(rule["id"], rule["applies_to_backupstore"]) for rule in report["bucket_settings"]["lifecycle_rules"]] == [
        ("expire-backups", True), ("expire-exports", False)]
    assert [(problem["volume"], problem["kind"]) for problem in report["problems"]] == [(None, "lifecycle_rules")]
    assert report["msg"] == "Bucket check failed on problems: 1 (lifecycle_rules)"


def test_no_credential_in_verbose_output(check, lab):
    # -vvv mixes Ansible's debug text into stdout, so these runs are judged by their text.
    populate(lab, ["pvc-0001-aaaa"], backups=1, blocks=1)
    healthy = check(verbosity=3, extra_vars={"bucket_check_write_probe": True, "bucket_check_integrity": "full"})
    assert healthy.rc == 0, healthy
    assert "AnsiballZ_minio_bucket_check.py" in healthy.stdout + healthy.stderr  # it really is -vvv output
    assert '"pvc_name": "data-pvc-0001-aaaa"' in healthy.stdout
    with_token = check(verbosity=3, secrets=(SESSION_TOKEN,), extra_vars={
        "bucket_check_session_token": SESSION_TOKEN, "bucket_check_fail_on": ["unreachable"]})
    assert with_token.rc != 0, with_token
    assert '"error_code": "InvalidToken"' in with_token.stdout
    wrong = check(verbosity=3, secrets=(WRONG_SECRET,), extra_vars={"bucket_check_secret_key": WRONG_SECRET})
    assert wrong.rc == 0, wrong
    assert '"error_code": "SignatureDoesNotMatch"' in wrong.stdout
    # A failure that carries an exception carries no credential either.
    broken = check(verbosity=3, secrets=(WRONG_SECRET,), extra_vars={
        "bucket_check_endpoint": "not a url", "bucket_check_secret_key": WRONG_SECRET})
    assert broken.rc != 0, broken
    assert "Invalid S3 connection options: " in broken.stdout
    assert '"exception": ' in broken.stdout
