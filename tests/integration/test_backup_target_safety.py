# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A bad target never replaces a working one (issue 10, part 3): real ansible-playbook runs against the lab.

- refusals: wrong keys, a missing bucket, a wrong region and an unreachable endpoint are refused before
  anything is written, each with its own message, in check mode too (one looped playbook run per mode);
- rollback: a target that passes the S3 check but that Longhorn reports unavailable is rolled back to the
  previous Secret and BackupTarget (or removed when the run created it), and the run reports changed.
"""

from __future__ import annotations

import base64

NAMESPACE = "longhorn-system"
SECRET = "longhorn-backup-credentials"
APPLY = "longhorn_backup_target.yml"
APPLY_TASK = "Configure the backup target"
REFUSALS = "backup_target_refusals.yml"
REFUSAL_TASK = "Configure a bad backup target"
CONFIGURE_BACKUPS = "playbooks/configure_backups.yml"
ROLE_TASK = "homelab.longhorn_dr.backup_target : Write the credential Secret and the backup target, then wait until it is available and synced"
ROLE_REPORT = "homelab.longhorn_dr.backup_target : Report why the backup target could not be configured"
WRONG_SECRET = "WrongSecretKey0123456789abcdef"


def backup_target(lab, name="default"):
    return lab.store.try_get(lab.store.registry.by_plural("backuptargets", "longhorn.io"), NAMESPACE, name)


def secret(lab, name=SECRET):
    return lab.store.try_get("secrets", NAMESPACE, name)


def spec_fields(target):
    spec = dict(target["spec"])
    spec.pop("syncRequestedAt", None)
    return spec


def working_target(lab, run_playbook):
    run = run_playbook(APPLY, extra_vars={"bt_poll": "10m"})
    assert run.rc == 0, run
    target = backup_target(lab)
    assert target["status"]["available"] is True
    return target, secret(lab)


def test_bad_targets_are_refused_before_any_write_each_with_its_own_message(lab, run_playbook):
    before_target, before_secret = working_target(lab, run_playbook)
    endpoint = lab.s3_endpoint
    cases = [
        ({"name": "access key", "access_key": "AKIAWRONGWRONGWRONG0"},
         ["access_key:", "InvalidAccessKeyId", "endpoints %r" % endpoint]),
        ({"name": "secret key", "secret_key": WRONG_SECRET},
         ["secret_key:", "SignatureDoesNotMatch", "endpoints %r" % endpoint]),
        ({"name": "bucket", "url": "s3://no-such-bucket@%s/" % lab.region},
         ["bucket 'no-such-bucket' does not exist", "NoSuchBucket", "url 's3://no-such-bucket@%s/'" % lab.region]),
        # The lab's S3 refuses another region as MinIO with a configured region does (tests/lab/s3.py).
        ({"name": "region", "url": "s3://%s@eu-west-1/" % lab.bucket},
         ["region 'eu-west-1'", "AuthorizationHeaderMalformed", "expecting '%s'" % lab.region, "url 's3://%s@eu-west-1/'" % lab.bucket]),
        ({"name": "endpoint", "endpoint": "http://127.0.0.1:9"},
         ["endpoints 'http://127.0.0.1:9'", "unreachable", "validate_target=false"]),
    ]
    for check in (True, False):
        mark = lab.audit_mark()
        run = run_playbook(REFUSALS, extra_vars={"bt_cases": [case for case, _words in cases]}, check=check)
        assert run.rc == 0, run  # ignore_errors: the loop runs every case
        items = run.task_result(REFUSAL_TASK)["results"]
        assert len(items) == len(cases), items
        messages = []
        for (case, words), item in zip(cases, items):
            assert item["failed"] is True, (case["name"], item)
            assert item["changed"] is False, (case["name"], item)
            assert item["msg"].startswith("The new backup target was not written: "), item["msg"]
            for word in words:
                assert word in item["msg"], (case["name"], word, item["msg"])
            messages.append(item["msg"])
        assert len(set(messages)) == len(cases)
        # Nothing written, not even a dry run: the refusal comes before the first request that writes.
        assert [entry for entry in lab.audit_entries()[mark:] if entry.get("write")] == [], check
        assert not run.mentions(WRONG_SECRET)
    assert spec_fields(backup_target(lab)) == spec_fields(before_target)
    assert secret(lab)["data"] == before_secret["data"]
    assert backup_target(lab)["status"]["available"] is True


def test_a_target_longhorn_reports_unavailable_is_rolled_back(lab, run_playbook):
    """The role (configure_backups) with a target that passes the S3 check but that Longhorn cannot use."""
    before_target, before_secret = working_target(lab, run_playbook)
    # Longhorn's availability probe lists <prefix>/backupstore/system-backups/ (tests/lab/longhorn/targets.py);
    # refusing just that for the new prefix lets the controller's check (a listing of broken/backupstore/) pass.
    lab.s3_fault("error", status=403, code="AccessDenied", paths="broken/backupstore/system-backups/*")
    broken_url = "s3://%s@%s/broken/" % (lab.bucket, lab.region)
    role_vars = {
        "longhorn_dr_kubeconfig": str(lab.kubeconfig),
        "backup_target_url": broken_url,
        "backup_target_access_key": lab.access_key,
        "backup_target_secret_key": lab.secret_key,
        # The same store by another name: the Secret's AWS_ENDPOINTS changes too and must come back.
        "backup_target_endpoint": lab.s3_endpoint.replace("127.0.0.1", "localhost"),
        "backup_target_wait_timeout": 6,
        "backup_target_wait_sleep": 1,
    }
    mark = lab.audit_mark()
    run = run_playbook(CONFIGURE_BACKUPS, extra_vars=role_vars)
    assert run.rc != 0, run
    message = run.task_result(ROLE_REPORT)["msg"]
    assert message.startswith("Backup target default: Timed out after 6s"), message
    assert "failed to list system backups in %s" % broken_url in message and "AccessDenied" in message
    assert "Rolled back: restored Secret %s data (AWS_ENDPOINTS)" % SECRET in message
    assert "BackupTarget default spec (backupTargetURL, pollInterval)" in message
    assert "The previous target is available again." in message
    # changed tells the truth: the module wrote (and then rolled back).
    assert run.task_result(ROLE_TASK)["changed"] is True
    written = lab.writes_since(mark)
    assert written and all("/secrets/" in e["path"] or "/backuptargets/" in e["path"] for e in written), written
    # Exactly the previous Secret data and spec fields; Longhorn uses the working target again.
    assert secret(lab)["data"] == before_secret["data"]
    assert base64.b64decode(secret(lab)["data"]["AWS_ENDPOINTS"]).decode() == lab.s3_endpoint
    assert spec_fields(backup_target(lab)) == spec_fields(before_target)
    assert backup_target(lab)["status"]["available"] is True
    assert not run.mentions(lab.secret_key)

    # No previous target of that name: what the run created is removed, the bucket is untouched.
    named = run_playbook(APPLY, extra_vars={"bt_name": "offsite", "bt_url": broken_url, "bt_secret_name": "offsite-credentials",
                                            "bt_wait_timeout": 6})
    assert named.rc != 0, named
    result = named.task_result(APPLY_TASK)
    assert result["changed"] is True
    assert "removed what this run created (BackupTarget offsite; Secret offsite-credentials; the bucket is untouched)" in result["msg"]
    assert result["rollback"]["removed"] == ["BackupTarget offsite", "Secret offsite-credentials"]
    assert backup_target(lab, "offsite") is None and secret(lab, "offsite-credentials") is None
    assert backup_target(lab)["status"]["available"] is True
