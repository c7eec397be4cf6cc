# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The recurring_jobs role and the configure_backups playbook on the lab."""

from __future__ import annotations

import base64

NAMESPACE = "longhorn-system"
# The collection playbook homelab.longhorn_dr.configure_backups, by path: the harness's resolve_playbook
# takes ".configure_backups" for a file suffix and refuses the FQCN (reported to the harness owner).
CONFIGURE_BACKUPS = "playbooks/configure_backups.yml"
APPLY_TASK = "Apply each RecurringJob as Longhorn stores it"


def recurring_job(lab, name):
    return lab.store.try_get(lab.store.registry.by_plural("recurringjobs", "longhorn.io"), NAMESPACE, name)


def test_role_applies_the_default_jobs_idempotently(lab, run_playbook):
    for check, expect_changed in ((True, True), (False, True), (True, False), (False, False)):
        mark = lab.audit_mark()
        run = run_playbook("recurring_jobs.yml", check=check)
        assert run.rc == 0, run
        assert (run.changed() > 0) is expect_changed, (check, run)
        if check or not expect_changed:
            assert lab.writes_since(mark) == []

    daily = recurring_job(lab, "daily-backup")["spec"]
    assert (daily["cron"], daily["retain"], daily["concurrency"], daily["groups"], daily["task"]) == ("0 2 * * *", 7, 2, ["default"], "backup")
    weekly = recurring_job(lab, "weekly-backup")["spec"]
    assert (weekly["cron"], weekly["retain"], weekly["concurrency"]) == ("0 3 * * 0", 4, 1)
    cleanup = recurring_job(lab, "snapshot-cleanup")["spec"]
    assert (cleanup["cron"], cleanup["retain"], cleanup["task"]) == ("0 6 * * *", 0, "snapshot-cleanup")
    assert recurring_job(lab, "system-backup") is None


def test_retain_is_written_as_longhorn_forces_it(lab, run_playbook):
    jobs = [{"name": "cleanup", "task": "snapshot-cleanup", "cron": "@daily", "retain": 5},
            {"name": "snap", "task": "snapshot", "cron": "*/15 * * * *", "retain": 0}]
    first = run_playbook("recurring_jobs.yml", extra_vars={"recurring_jobs_list": jobs})
    assert first.rc == 0 and first.changed() > 0, first
    assert recurring_job(lab, "cleanup")["spec"]["retain"] == 0
    assert recurring_job(lab, "snap")["spec"]["retain"] == 1
    second = run_playbook("recurring_jobs.yml", extra_vars={"recurring_jobs_list": jobs})
    assert second.rc == 0 and second.changed() == 0, second


def test_bad_cron_is_refused_before_any_write(lab, run_playbook):
    for cron in ("0 2 * *", "61 2 * * *", "0 2 * * 8", "every day", "0 2 * * mon-"):
        jobs = [{"name": "good-job", "task": "backup", "cron": "0 1 * * *", "retain": 2},
                {"name": "bad-job", "task": "backup", "cron": cron, "retain": 2}]
        mark = lab.audit_mark()
        run = run_playbook("recurring_jobs.yml", extra_vars={"recurring_jobs_list": jobs})
        assert run.rc != 0, run
        assert "recurring_jobs_list[1] (bad-job): cron '%s' is not a 5-field cron expression" % cron in run.stdout, run
        assert "(good-job)" not in run.stdout
        assert lab.writes_since(mark) == [], cron
        assert recurring_job(lab, "good-job") is None


def test_string_booleans_from_extra_vars_or_awx_surveys(lab, run_playbook):
    # `-e flag=false` and AWX surveys give the string "false", which Jinja alone would take as true.
    run = run_playbook("recurring_jobs.yml", extra_vars={"recurring_jobs_system_backup_enabled": "false"})
    assert run.rc == 0, run
    assert recurring_job(lab, "system-backup") is None
    run = run_playbook("recurring_jobs.yml", extra_vars={"recurring_jobs_system_backup_enabled": "true"})
    assert run.rc == 0, run
    assert recurring_job(lab, "system-backup") is not None


def test_configure_backups_playbook_end_to_end(lab, run_playbook):
    extra = {
        "longhorn_dr_kubeconfig": str(lab.kubeconfig),
        "backup_target_url": lab.backup_target_url,
        "backup_target_access_key": lab.access_key,
        "backup_target_secret_key": lab.secret_key,
        "backup_target_endpoint": lab.s3_endpoint,
        "backup_target_wait_timeout": 120,
        "backup_target_wait_sleep": 1,
        "recurring_jobs_system_backup_enabled": True,
    }
    secrets = (lab.secret_key, lab.access_key, base64.b64encode(lab.secret_key.encode()).decode())
    for check, expect_changed in ((True, True), (False, True), (True, False), (False, False)):
        mark = lab.audit_mark()
        run = run_playbook(CONFIGURE_BACKUPS, extra_vars=extra, check=check)
        assert run.rc == 0, run
        assert (run.changed() > 0) is expect_changed, (check, run)
        assert not any(run.mentions(value) for value in secrets), "credential leaked in the output"
        if check or not expect_changed:
            assert lab.writes_since(mark) == []
    # Issue 3 secret scan: -vvv prints module arguments and results in full; no credential may show.
    for check in (True, False):
        verbose = run_playbook(CONFIGURE_BACKUPS, extra_vars={**extra, "backup_target_sync": True}, check=check, diff=True, verbosity=3)
        assert verbose.rc == 0 and "longhorn_backup_target" in verbose.stdout, verbose
        assert not any(verbose.mentions(value) for value in secrets), "credential leaked in -vvv output"
    target = lab.store.try_get(lab.store.registry.by_plural("backuptargets", "longhorn.io"), NAMESPACE, "default")
    assert target["status"]["available"] is True and target["status"]["lastSyncedAt"]
    assert recurring_job(lab, "system-backup")["spec"]["parameters"] == {"volume-backup-policy": "if-not-present"}


def test_configure_backups_refuses_an_empty_url(lab, run_playbook):
    mark = lab.audit_mark()
    run = run_playbook(CONFIGURE_BACKUPS, extra_vars={"longhorn_dr_kubeconfig": str(lab.kubeconfig)})
    assert run.rc != 0, run
    assert "backup_target_url must be set" in run.stdout
    assert lab.writes_since(mark) == []


def test_configure_backups_reports_the_unavailable_message_without_credentials(lab, run_playbook):
    wrong = "WrongSecretKeyForTheRole42"
    mark = lab.audit_mark()
    run = run_playbook(CONFIGURE_BACKUPS, extra_vars={
        "longhorn_dr_kubeconfig": str(lab.kubeconfig),
        "backup_target_url": lab.backup_target_url,
        "backup_target_access_key": lab.access_key,
        "backup_target_secret_key": wrong,
        "backup_target_endpoint": lab.s3_endpoint,
        "backup_target_wait_timeout": 5,
        "backup_target_wait_sleep": 1,
    })
    assert run.rc != 0, run
    message = run.task_result("homelab.longhorn_dr.backup_target : Report why the backup target could not be configured")["msg"]
    # Issue 10: the wrong key is refused over S3 before anything is written (it used to be written, then time out).
    assert message.startswith("Backup target default: The new backup target was not written: secret_key:"), message
    assert "SignatureDoesNotMatch" in message
    assert lab.writes_since(mark) == []
    assert not run.mentions(wrong) and not run.mentions(lab.secret_key)
    # The play stops at the target: no recurring job was applied.
    assert recurring_job(lab, "daily-backup") is None
