# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_system_backup against the lab: present/absent rhythm, keep_remote, refusal while the target is unavailable,
and state=restored after a cluster wipe."""

from __future__ import annotations

import os

import pytest

from tests.integration.helpers import wait_until as _wait
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


def test_restored_after_a_cluster_wipe(lab, run_playbook):
    volumes = setup_backups(lab, run_playbook, claims=('app-data', 'db-data'))
    backed_up = run_playbook('longhorn_system_backup.yml', extra_vars={'system_backup_name': 'before-wipe', 'system_backup_policy': 'always'})
    assert backed_up.rc == 0, str(backed_up)

    # Teardown and rebuild: a fresh Longhorn with no Secret and no target (Secrets are not in a system backup, ref §2).
    lab.wipe_cluster()
    assert lab.store.try_get('persistentvolumeclaims', 'apps', 'app-data') is None
    refused = run_playbook('longhorn_system_backup.yml', extra_vars={'system_backup_name': 'before-wipe', 'system_backup_state': 'restored'})
    assert refused.rc != 0 and 'SystemBackup before-wipe not found' in refused.task_result(TASK)['msg'], str(refused)

    rebuilt = run_playbook('longhorn_volume_backup_setup.yml', extra_vars={'setup_claims': []})
    assert rebuilt.rc == 0, str(rebuilt)
    _wait(lambda: ((lab.store.try_get('systembackups', 'longhorn-system', 'before-wipe') or {}).get('status') or {}).get('state') == 'Ready',
          'the system backup to sync from the bucket')

    # No name: the newest Ready system backup.
    restored = _run_rhythm(lab, run_playbook, {'system_backup_state': 'restored'})
    assert [r['changed'] for r in restored] == [True, True, False, False]
    assert restored[1]['name'] == 'before-wipe' and restored[1]['restore_name'] == 'restore-before-wipe'
    assert restored[1]['result']['status']['state'] == 'Completed', restored[1]
    assert restored[1]['rollout_job'] == 'longhorn-system-rollout-restore-before-wipe'
    assert restored[3]['result']['status']['state'] == 'Completed'

    for claim, volume in volumes.items():
        pvc = lab.store.get('persistentvolumeclaims', 'apps', claim)
        assert pvc['spec']['volumeName'] == volume, pvc
        with open(os.path.join(lab.ctx.volume_data_dir(volume), 'data.txt'), encoding='utf-8') as handle:
            assert handle.read() == f'{claim} payload\n' * 1000, f'{volume} came back without its data'
    restores, _version = lab.store.list('systemrestores', 'longhorn-system')
    assert [r['metadata']['name'] for r in restores] == ['restore-before-wipe'], 'a re-run must not start a second restore'
