# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_backup_target on the lab: CHECK -> apply -> idempotent CHECK -> idempotent apply."""

from __future__ import annotations

import base64

import pytest

NAMESPACE = "longhorn-system"
SECRET = "longhorn-backup-credentials"
TASK = "Configure the backup target"
PLAYBOOK = "longhorn_backup_target.yml"


def backup_target(lab, name="default"):
    return lab.store.try_get(lab.store.registry.by_plural("backuptargets", "longhorn.io"), NAMESPACE, name)


def setting(lab, name):
    return lab.store.try_get(lab.store.registry.by_plural("settings", "longhorn.io"), NAMESPACE, name)["value"]


def secret_data(lab, name=SECRET):
    secret = lab.store.try_get("secrets", NAMESPACE, name)
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def assert_no_secret(result, *values):
    for value in values:
        assert not result.mentions(value), "a credential value leaked into the output:\n%s" % result


def run_rhythm(lab, run_playbook, playbook, extra_vars, task=TASK):
    """CHECK -> apply -> CHECK -> apply; returns the four task results after asserting changed and writes."""
    results = []
    for check, expect_changed in ((True, True), (False, True), (True, False), (False, False)):
        mark = lab.audit_mark()
        run = run_playbook(playbook, extra_vars=extra_vars, check=check, diff=True)
        assert run.rc == 0, run
        assert_no_secret(run, lab.secret_key)
        task_result = run.task_result(task)
        assert task_result["changed"] is expect_changed, (check, task_result)
        if check:
            assert lab.writes_since(mark) == [], "check mode wrote to the cluster"
        elif not expect_changed:
            assert lab.writes_since(mark) == [], "an idempotent run wrote to the cluster"
        results.append(task_result)
    return results


def test_default_target_with_managed_secret_waits_until_synced(lab, run_playbook):
    # Surrounding whitespace must be trimmed (ref §1.1) and still compare equal on the next runs.
    extra = {"bt_access_key": " %s\n" % lab.access_key, "bt_poll": 300}
    check, applied, _again_check, _again = run_rhythm(lab, run_playbook, PLAYBOOK, extra)

    assert check["diff"]["after"]["secret"]["data"]["AWS_SECRET_ACCESS_KEY"] == "******** (changed)"
    assert check["diff"]["after"]["target"]["backupTargetURL"] == lab.backup_target_url
    assert check["diff"]["before"]["target"]["backupTargetURL"] == ""
    assert applied["secret_changed_keys"] == ["AWS_ACCESS_KEY_ID", "AWS_ENDPOINTS", "AWS_SECRET_ACCESS_KEY"]
    assert applied["result"]["status"]["available"] is True
    assert applied["result"]["status"]["lastSyncedAt"]
    assert applied["legacy_settings"] is False

    target = backup_target(lab)
    assert target["spec"]["backupTargetURL"] == lab.backup_target_url
    assert target["spec"]["credentialSecret"] == SECRET
    assert target["spec"]["pollInterval"] == "5m0s"
    assert secret_data(lab) == {"AWS_ACCESS_KEY_ID": lab.access_key, "AWS_SECRET_ACCESS_KEY": lab.secret_key,
                                "AWS_ENDPOINTS": lab.s3_endpoint}

    # 300 and "5m0s" are the same interval.
    mark = lab.audit_mark()
    run = run_playbook(PLAYBOOK, extra_vars={**extra, "bt_poll": "5m0s"})
    assert run.rc == 0, run
    assert run.task_result(TASK)["changed"] is False
    assert lab.writes_since(mark) == []


def test_sync_requests_a_fresh_sync_and_reports_a_change(lab, run_playbook):
    first = run_playbook(PLAYBOOK)
    assert first.rc == 0, first
    before = first.task_result(TASK)["result"]["spec"].get("syncRequestedAt")
    mark = lab.audit_mark()
    run = run_playbook(PLAYBOOK, extra_vars={"bt_sync": True})
    assert run.rc == 0, run
    result = run.task_result(TASK)
    assert result["changed"] is True and result["sync_requested"] is True
    assert result["result"]["spec"]["syncRequestedAt"] != before
    assert result["result"]["status"]["lastSyncedAt"] >= result["result"]["spec"]["syncRequestedAt"]
    assert any("/backuptargets/default" in entry["path"] for entry in lab.writes_since(mark))


def test_without_the_s3_check_wrong_credentials_wait_fail_and_are_rolled_back(lab, run_playbook):
    # validate_target=false (a controller that cannot reach the store): Longhorn's wait is the check, and the
    # rollback gives back the previous target, here the empty default one, and removes the Secret the run created.
    wrong = "WrongSecretKey0123456789"
    mark = lab.audit_mark()
    run = run_playbook(PLAYBOOK, extra_vars={"bt_secret_key": wrong, "bt_wait_timeout": 6, "bt_validate": False})
    assert run.rc != 0, run
    result = run.task_result(TASK)
    assert result["failed"] is True and result["changed"] is True
    assert "Timed out after 6s waiting for BackupTarget default" in result["msg"]
    assert "failed to list system backups in %s" % lab.backup_target_url in result["msg"]
    assert "removed what this run created (Secret %s; the bucket is untouched)" % SECRET in result["msg"]
    assert result["result"]["status"]["available"] is False
    assert result["target_check"]["skipped_reason"] == "validate_target=false"
    assert any("validate_target=false: the new target %s was not checked" % lab.backup_target_url in warning
               for warning in result["warnings"])
    assert lab.writes_since(mark), "nothing was written, the rollback is untested"
    assert backup_target(lab)["spec"]["backupTargetURL"] == "" and lab.store.try_get("secrets", NAMESPACE, SECRET) is None
    # At -vvv (module arguments and results in full) no credential shows.
    assert_no_secret(run, wrong, lab.secret_key, lab.access_key)


def test_bad_url_is_refused_before_any_write(lab, run_playbook):
    for url, words in (("s3://%s/" % lab.bucket, "region"), ("s3://%s@us-east-1" % lab.bucket, "end it with '/'"),
                       ("s3://%s@us-east-1/backups" % lab.bucket, "end the URL with '/'"), ("ftp://host/", "scheme")):
        mark = lab.audit_mark()
        run = run_playbook(PLAYBOOK, extra_vars={"bt_url": url})
        assert run.rc != 0, run
        assert words in run.task_result(TASK)["msg"]
        assert lab.writes_since(mark) == [], url
        assert_no_secret(run, lab.secret_key)
    assert backup_target(lab)["spec"]["backupTargetURL"] == ""


def test_bad_poll_interval_is_refused(lab, run_playbook):
    mark = lab.audit_mark()
    run = run_playbook(PLAYBOOK, extra_vars={"bt_poll": "five minutes"})
    assert run.rc != 0, run
    assert "invalid poll interval 'five minutes'" in run.task_result(TASK)["msg"]
    assert lab.writes_since(mark) == []


def test_configmap_with_backup_target_keys_gives_a_warning(lab, run_playbook):
    def _set(configmap):
        configmap["data"]["default-resource.yaml"] = "backup-target: %s\nbackupstore-poll-interval: 300\n" % lab.backup_target_url
    lab.store.modify("configmaps", NAMESPACE, "longhorn-default-resource", _set)
    run = run_playbook(PLAYBOOK)
    assert run.rc == 0, run
    warnings = " ".join(run.task_result(TASK).get("warnings", []))
    assert "longhorn-default-resource" in warnings
    assert "backup-target, backupstore-poll-interval" in warnings


def test_named_target_create_and_delete(lab, run_playbook):
    extra = {"bt_name": "secondary", "bt_url": "s3://%s@us-east-1/secondary/" % lab.bucket, "bt_poll": "10m"}
    run_rhythm(lab, run_playbook, PLAYBOOK, extra)
    target = backup_target(lab, "secondary")
    assert target["spec"]["pollInterval"] == "10m0s"
    assert target["status"]["available"] is True

    mark = lab.audit_mark()
    check = run_playbook("longhorn_backup_target_absent.yml", extra_vars={"bt_name": "secondary"}, check=True)
    assert check.rc == 0 and check.task_result("Remove the backup target")["changed"] is True, check
    assert lab.writes_since(mark) == []
    gone = run_playbook("longhorn_backup_target_absent.yml", extra_vars={"bt_name": "secondary"})
    assert gone.rc == 0 and gone.task_result("Remove the backup target")["changed"] is True, gone
    again = run_playbook("longhorn_backup_target_absent.yml", extra_vars={"bt_name": "secondary"})
    assert again.rc == 0 and again.task_result("Remove the backup target")["changed"] is False, again


def test_absent_clears_the_default_target(lab, run_playbook):
    assert run_playbook(PLAYBOOK).rc == 0
    run = run_playbook("longhorn_backup_target_absent.yml")
    assert run.rc == 0 and run.task_result("Remove the backup target")["changed"] is True, run
    assert backup_target(lab)["spec"]["backupTargetURL"] == ""
    assert backup_target(lab)["spec"]["credentialSecret"] == ""
    again = run_playbook("longhorn_backup_target_absent.yml")
    assert again.task_result("Remove the backup target")["changed"] is False, again


class TestLegacySettings:
    """Longhorn <= 1.7 keeps the target in three Settings (ref §1.2)."""

    @pytest.fixture
    def lab(self, lab_factory):
        return lab_factory(longhorn_version="v1.7.2")

    def test_settings_path(self, lab, run_playbook):
        extra = {"bt_poll": "5m"}
        _check, applied, _c, _a = run_rhythm(lab, run_playbook, PLAYBOOK, extra)
        assert applied["legacy_settings"] is True
        assert applied["longhorn_version"] == "v1.7.2"
        assert setting(lab, "backup-target") == lab.backup_target_url
        assert setting(lab, "backup-target-credential-secret") == SECRET
        assert setting(lab, "backupstore-poll-interval") == "300"
        assert applied["result"]["status"]["available"] is True

        run = run_playbook(PLAYBOOK, extra_vars={"bt_name": "secondary"})
        assert run.rc != 0 and "named targets need 1.8 or later" in run.task_result(TASK)["msg"], run
