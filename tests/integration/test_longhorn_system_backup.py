# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_system_backup against the lab: present/absent rhythm, keep_remote, refusal while the target is unavailable."""

from __future__ import annotations

import pytest

from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration

TASK = 'Manage the system backup'


def _system_backup_keys(lab, name):
    s3 = lab.ctx.s3_client()
    pages = s3.get_paginator('list_objects_v2').paginate(Bucket=lab.bucket, Prefix='backupstore/system-backups/')
    return [o['Key'] for page in pages for o in page.get('Contents', []) if f'/{name}/' in o['Key']]


def _run_rhythm(lab, run_playbook, extra_vars):
    """CHECK -> apply -> CHECK -> apply; returns the four task results, asserting zero writes in check runs."""
    results = []
    for check in (True, False, True, False):
        mark = lab.audit_mark()
        result = run_playbook('longhorn_system_backup.yml', check=check, extra_vars=extra_vars)
        assert result.rc == 0, str(result)
        if check:
            assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
        results.append(result.task_result(TASK))
    return results


@pytest.mark.parametrize('keep_remote', [False, True])
def test_present_then_absent(lab, run_playbook, keep_remote):
    volumes = setup_backups(lab, run_playbook, claims=('app-data',))
    name = 'before-rebuild'

    created = _run_rhythm(lab, run_playbook, {'system_backup_name': name, 'system_backup_policy': 'always'})
    assert [r['changed'] for r in created] == [True, True, False, False]
    assert lab.store.try_get('systembackups', 'longhorn-system', name) is not None
    assert created[1]['result']['status']['state'] == 'Ready', created[1]
    assert created[3]['result']['spec']['volumeBackupPolicy'] == 'always'
    assert _system_backup_keys(lab, name), 'the system backup was not uploaded'
    backups, _version = lab.store.list('backups', 'longhorn-system')
    assert {b['status'].get('volumeName') for b in backups} == set(volumes.values()), 'policy always backs up every volume'

    deleted = _run_rhythm(lab, run_playbook, {'system_backup_name': name, 'system_backup_state': 'absent',
                                              'system_backup_keep_remote': keep_remote})
    assert [r['changed'] for r in deleted] == [True, True, False, False]
    assert lab.store.try_get('systembackups', 'longhorn-system', name) is None
    assert bool(_system_backup_keys(lab, name)) is keep_remote


def test_refused_while_the_target_is_unavailable(lab, run_playbook):
    # No setup: BackupTarget default has no URL, so it is unavailable.
    for check in (True, False):
        mark = lab.audit_mark()
        result = run_playbook('longhorn_system_backup.yml', check=check, extra_vars={'system_backup_name': 'refused'})
        assert result.rc != 0, str(result)
        msg = result.task_result(TASK)['msg']
        assert 'Cannot create SystemBackup refused' in msg and 'BackupTarget default is not available' in msg, msg
        assert lab.writes_since(mark) == []
    assert lab.store.try_get('systembackups', 'longhorn-system', 'refused') is None


def test_generated_name_creates_a_new_backup(lab, run_playbook):
    setup_backups(lab, run_playbook, claims=('app-data',))
    result = run_playbook('longhorn_system_backup.yml', extra_vars={'system_backup_policy': 'disabled'})
    assert result.rc == 0, str(result)
    task = result.task_result(TASK)
    assert task['changed'] is True and task['name'].startswith('system-backup-'), task
    assert task['result']['status']['state'] == 'Ready'
    backups, _version = lab.store.list('backups', 'longhorn-system')
    assert backups == [], 'policy disabled takes no volume backups'
