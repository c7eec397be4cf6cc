# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The check_backups playbook on the lab's bucket, with credentials from AWS_* as AWX passes them (issue 3).

The harness scans every run's -vvv output for the lab's credentials; these tests also look for the
wrong secret they pass themselves.
"""

from __future__ import annotations

import datetime
import json

import pytest

from tests.integration.test_longhorn_volume_backup import setup_backups
from tests.integration.test_minio_bucket_check import backup, image, labels
from tests.lab.longhorn.backupstore import BackupStore

pytestmark = pytest.mark.integration

PLAYBOOK = 'homelab.longhorn_dr.check_backups'
WRONG_SECRET = 'wrong-secret-check-backups-never-shown'
READ = 'Read the bucket'
FAIL = 'Fail on what the check found'
SUMMARY = 'Summarize the bucket'


def aws_env(lab):
    return {'AWS_ENDPOINT_URL': lab.s3_endpoint, 'AWS_ACCESS_KEY_ID': lab.access_key,
            'AWS_SECRET_ACCESS_KEY': lab.secret_key, 'AWS_REGION': lab.region}


def check_backups(run_playbook, lab, **extra_vars):
    result = run_playbook(PLAYBOOK, env=aws_env(lab), extra_vars={'check_backups_bucket': lab.bucket, **extra_vars})
    assert result.output, result  # the JSON document was found in the -vvv output
    assert not result.mentions(WRONG_SECRET), 'the wrong secret appears in the output of check_backups'
    return result


def test_healthy_damaged_and_refused(lab, run_playbook, tmp_path):
    volumes = setup_backups(lab, run_playbook, claims=('app-data', 'db-data'))
    backed_up = run_playbook('backup_now_lab.yml', extra_vars={'backup_now_system_backup_name': 'before-check'})
    assert backed_up.rc == 0, backed_up
    names = sorted(volumes.values())
    report_file = tmp_path / 'report.json'

    healthy = check_backups(run_playbook, lab, check_backups_expected_volumes=','.join(names),
                            check_backups_report_file=str(report_file))
    assert healthy.rc == 0, healthy
    report = healthy.task_result(READ)
    assert [volume['name'] for volume in report['volumes']] == names
    claims = {volume: claim for claim, volume in volumes.items()}
    assert [(volume['pvc_namespace'], volume['pvc_name'], volume['backup_count'], volume['incomplete_backups'])
            for volume in report['volumes']] == [('apps', claims[name], 1, 0) for name in names]
    assert report['integrity']['level'] == 'structure' and report['integrity']['checked_blocks'] > 0
    assert (report['stale'], report['missing'], report['problems']) == ([], [], [])
    summary = healthy.task_result(SUMMARY)['msg']
    assert summary['verdict'] == 'OK'
    assert summary['access'] == 'readable'
    assert [line.split(' ')[0] for line in summary['volumes']] == names
    assert all(', 1 backup(s), 0 incomplete' in line and '(apps/' in line for line in summary['volumes']), summary
    assert any(line.startswith('before-check ') for line in summary['system_backups']), summary
    stats = healthy.output['global_custom_stats']['check_backups']
    assert (stats['ok'], stats['volumes'], stats['failures']) == (True, names, [])
    written = json.loads(report_file.read_text(encoding='utf-8'))
    assert [volume['name'] for volume in written['volumes']] == names
    assert 'invocation' not in written
    assert oct(report_file.stat().st_mode & 0o777) == '0o600'
    assert FAIL not in [task['task']['name'] for task in healthy.tasks() if 'skipped' not in task['hosts']['localhost']]

    # A missing block fails the default (structure) check; a corrupt one needs integrity=full.
    deleted = lab.damage_block(names[0], mode='delete')
    damaged = check_backups(run_playbook, lab)
    assert damaged.rc != 0, damaged
    message = damaged.task_result(FAIL)['msg']
    assert message.startswith('Backup check of %s failed: integrity: 1 missing block(s), 0 corrupt block(s)' % lab.bucket), message
    assert '%s/' % names[0] in message and names[1] not in message, message
    assert damaged.task_result(READ)['integrity']['missing'][0]['key'] == deleted
    assert damaged.output['global_custom_stats']['check_backups']['ok'] is False

    lab.damage_block(names[1], mode='corrupt')
    full = check_backups(run_playbook, lab, check_backups_integrity='full')
    assert full.rc != 0, full
    message = full.task_result(FAIL)['msg']
    assert 'integrity: 1 missing block(s), 1 corrupt block(s)' in message, message
    assert '%s/' % names[0] in message and '%s/' % names[1] in message, message

    refused = check_backups(run_playbook, lab, check_backups_secret_key=WRONG_SECRET, check_backups_expected_volumes=names)
    assert refused.rc != 0, refused
    message = refused.task_result(FAIL)['msg']
    assert 'cannot read the backupstore: the S3 credentials were refused (SignatureDoesNotMatch)' in message, message
    assert 'missing: 2 expected volume(s)' in message, message
    assert refused.task_result(SUMMARY)['msg']['access'].startswith('NOT READABLE: SignatureDoesNotMatch'), refused


def test_stale_missing_and_warnings(lab, run_playbook):
    store = BackupStore(lab.s3.client(), lab.bucket)
    two_days_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    backup(store, 'pvc-0001-old', 'backup-old', image(1, 1), taken=two_days_ago)
    backup(store, 'pvc-0002-new', 'backup-new', image(2, 1))
    writer = store.begin_backup('pvc-0002-new', 'backup-aborted', compression='lz4', volume_size=2 * 1024 * 1024,
                                labels=labels('pvc-0002-new'))
    writer.abort()  # an aborted backup: a warning, the complete one still restores

    expected = ['pvc-0001-old', 'pvc-0002-new', 'pvc-0003-never']
    result = check_backups(run_playbook, lab, check_backups_expected_volumes=expected)
    assert result.rc != 0, result
    assert result.task_result(FAIL)['msg'] == (
        'Backup check of %s failed: stale: 1 volume(s) without a complete backup newer than 24h: pvc-0001-old; '
        'missing: 1 expected volume(s) without a complete backup: pvc-0003-never' % lab.bucket)
    summary = result.task_result(SUMMARY)['msg']
    assert summary['warnings'] == ['incomplete_backup on pvc-0002-new'] and summary['problems'] == []
    old, new = summary['volumes']
    assert old.startswith('pvc-0001-old (apps/data-pvc-0001-old): last backup backup-old at ') and ', age 2d00h' in old, old
    assert ', 1 backup(s), 1 incomplete' in new, new

    # The same bucket passes without the freshness and expectation checks: warnings do not fail it.
    relaxed = check_backups(run_playbook, lab, check_backups_max_age='')
    assert relaxed.rc == 0, relaxed
    assert relaxed.output['global_custom_stats']['check_backups']['warnings'] == ['incomplete_backup on pvc-0002-new']
