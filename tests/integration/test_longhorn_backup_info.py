# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_backup_info against the lab: the view matches what the cluster holds, check mode reads only."""

from __future__ import annotations

import re
import time

import pytest

from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration

NS = 'longhorn-system'
TASK = 'Read the backup info'
ISO_Z = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
BACKUP_KEYS = {'name', 'state', 'created_at', 'age_seconds', 'url', 'size', 'error'}
VOLUME_KEYS = {'name', 'size', 'state', 'robustness', 'access_mode', 'data_engine', 'pvc_namespace', 'pvc_name', 'pv_name', 'pv_status',
               'last_backup', 'last_completed_backup', 'backup_count', 'recurring_jobs', 'recurring_job_groups'}
SYSTEM_BACKUP_KEYS = {'name', 'state', 'created_at', 'age_seconds', 'version', 'volume_backup_policy', 'error'}


def _stored(lab, kind):
    items, _version = lab.store.list(kind, NS)
    return {item['metadata']['name']: item for item in items}


def _iso(text):
    """A Kubernetes timestamp as the module prints it (whole seconds, Z)."""
    return text[:19] + 'Z' if text else None


def _info(lab, run_playbook, check=False, extra_vars=None):
    mark = lab.audit_mark()
    result = run_playbook('longhorn_backup_info.yml', check=check, extra_vars=extra_vars)
    assert lab.writes_since(mark) == [], 'longhorn_backup_info wrote to the cluster'
    assert not result.mentions(lab.secret_key)
    return result


def _assert_backup_matches(entry, stored):
    assert BACKUP_KEYS <= set(entry), entry
    status = stored['status']
    assert entry['name'] == stored['metadata']['name']
    assert entry['state'] == status['state']
    assert entry['url'] == (status.get('url') or None)
    assert entry['size'] == (int(status['size']) if status.get('size') else None)
    assert entry['error'] == (status.get('error') or None)
    assert entry['created_at'] == _iso(status.get('backupCreatedAt') or status.get('snapshotCreatedAt'))
    assert 0 <= entry['age_seconds'] < 600


def test_view_of_volumes_backups_target_and_system_backups(lab, run_playbook):
    volumes = setup_backups(lab, run_playbook)
    app, db, logs = volumes['app-data'], volumes['db-data'], volumes['logs-data']

    setup = run_playbook('longhorn_backup_info_setup.yml', extra_vars={
        'info_backup_volumes': [app, db], 'info_job_volume': app, 'info_group_volume': logs})
    assert setup.rc == 0, str(setup)
    completed = {b['volume']: b['backup'] for b in setup.task_result('Back up the volumes')['backups']}
    assert sorted(completed) == sorted([app, db])

    # A later backup of db fails: its last backup is the Error one, its last completed one stays.
    time.sleep(1.1)
    lab.fail_backup(db)
    failing = run_playbook('longhorn_volume_backup.yml', extra_vars={'backup_volumes': [db]})
    assert failing.rc != 0, str(failing)
    failed_name = failing.task_result('Back up the volumes')['backups'][0]['backup']
    lab.clear_faults()

    result = _info(lab, run_playbook)
    assert result.rc == 0, str(result)
    info = result.task_result(TASK)
    assert info['changed'] is False

    settings = _stored(lab, 'settings')
    assert info['longhorn_version'] == settings['current-longhorn-version']['value']
    assert info['legacy_settings'] is False
    assert ISO_Z.match(info['checked_at']), info['checked_at']

    target = lab.store.get('backuptargets', NS, 'default')
    assert info['backup_target'] == {
        'name': 'default', 'url': target['spec']['backupTargetURL'], 'credential_secret': 'minio-credentials',
        'poll_interval': 300, 'available': True, 'last_synced_at': _iso(target['status']['lastSyncedAt']), 'message': None}
    assert info['backup_target']['url'] == f's3://{lab.bucket}@{lab.region}/'

    stored_volumes = _stored(lab, 'volumes')
    stored_backups = _stored(lab, 'backups')
    assert [v['name'] for v in info['volumes']] == sorted(stored_volumes)
    by_name = {v['name']: v for v in info['volumes']}
    for claim, name in volumes.items():
        entry = by_name[name]
        assert VOLUME_KEYS <= set(entry), entry
        stored = stored_volumes[name]
        kstatus = stored['status']['kubernetesStatus']
        assert (entry['pvc_namespace'], entry['pvc_name']) == ('apps', claim)
        assert entry['pv_name'] == kstatus['pvName'] and entry['pv_name']
        assert entry['pv_status'] == kstatus['pvStatus'] == 'Bound'
        assert entry['size'] == int(stored['spec']['size']) and entry['size'] > 0
        assert entry['access_mode'] == 'rwo' and entry['data_engine'] == 'v1'
        assert entry['state'] == stored['status']['state'] and entry['robustness'] == stored['status']['robustness']

    # app: one completed backup, a direct job and (its default label removed) no group
    entry = by_name[app]
    _assert_backup_matches(entry['last_backup'], stored_backups[completed[app]])
    assert entry['last_backup']['state'] == 'Completed' and entry['last_backup']['size'] > 0
    assert entry['last_completed_backup'] == entry['last_backup']
    assert entry['backup_count'] == 1
    assert (entry['recurring_jobs'], entry['recurring_job_groups']) == (['nightly'], [])

    # db: the newest backup failed, an older one completed; the default group Longhorn gave it
    entry = by_name[db]
    assert entry['last_backup']['name'] == failed_name
    _assert_backup_matches(entry['last_backup'], stored_backups[failed_name])
    assert entry['last_backup']['state'] == 'Error' and entry['last_backup']['error']
    _assert_backup_matches(entry['last_completed_backup'], stored_backups[completed[db]])
    assert entry['last_completed_backup']['created_at'] <= entry['last_backup']['created_at']
    assert entry['backup_count'] == 1
    assert (entry['recurring_jobs'], entry['recurring_job_groups']) == ([], ['default'])
    assert stored_volumes[db]['metadata']['labels']['recurring-job-group.longhorn.io/default'] == 'enabled'

    # logs: never backed up; groups default + weekly, the disabled job does not count
    entry = by_name[logs]
    assert entry['last_backup'] is None and entry['last_completed_backup'] is None and entry['backup_count'] == 0
    assert (entry['recurring_jobs'], entry['recurring_job_groups']) == ([], ['default', 'weekly'])

    stored_system = _stored(lab, 'systembackups')
    assert [s['name'] for s in info['system_backups']] == ['info-second', 'info-first']
    for entry in info['system_backups']:
        assert set(entry) == SYSTEM_BACKUP_KEYS, entry
        status = stored_system[entry['name']]['status']
        assert entry['state'] == status['state'] == 'Ready'
        assert entry['version'] == status['version'] == settings['current-longhorn-version']['value']
        assert entry['volume_backup_policy'] == 'disabled' and entry['error'] is None
        assert entry['created_at'] == _iso(status['createdAt']) and 0 <= entry['age_seconds'] < 600
    assert info['last_ready_system_backup'] == info['system_backups'][0]
    assert info['backup_volumes_not_in_cluster'] == []

    # --check gives the same view (ages and checked_at may move by a second)
    checked = _info(lab, run_playbook, check=True)
    assert checked.rc == 0, str(checked)
    check_info = checked.task_result(TASK)
    assert check_info['changed'] is False
    assert [(v['name'], (v['last_backup'] or {}).get('name'), v['backup_count']) for v in check_info['volumes']] == \
        [(v['name'], (v['last_backup'] or {}).get('name'), v['backup_count']) for v in info['volumes']]
    assert check_info['backup_target'] == info['backup_target']

    # a filter reports only the volumes asked for; an unknown name fails, naming it
    some = _info(lab, run_playbook, extra_vars={'info_volumes': [logs, app, app]})
    assert some.rc == 0, str(some)
    assert [v['name'] for v in some.task_result(TASK)['volumes']] == sorted([app, logs])
    unknown = _info(lab, run_playbook, extra_vars={'info_volumes': [app, 'no-such-volume']})
    assert unknown.rc != 0, str(unknown)
    assert 'no-such-volume' in unknown.task_result(TASK)['msg']
    assert unknown.task_result(TASK)['unknown_volumes'] == ['no-such-volume']


class TestLonghorn17:
    @pytest.fixture
    def lab(self, lab_factory):
        return lab_factory(longhorn_version='v1.7.2')

    def test_backup_target_from_the_settings(self, lab, run_playbook):
        applied = run_playbook('longhorn_backup_target.yml', extra_vars={'bt_poll': 120})
        assert applied.rc == 0, str(applied)

        result = _info(lab, run_playbook)
        assert result.rc == 0, str(result)
        info = result.task_result(TASK)
        settings = _stored(lab, 'settings')
        assert info['longhorn_version'] == 'v1.7.2' and info['legacy_settings'] is True
        target = info['backup_target']
        assert target['url'] == settings['backup-target']['value'] == f's3://{lab.bucket}@{lab.region}/'
        assert target['credential_secret'] == settings['backup-target-credential-secret']['value'] == 'longhorn-backup-credentials'
        assert target['poll_interval'] == int(settings['backupstore-poll-interval']['value']) == 120
        assert target['available'] is True and target['message'] is None
        stored = lab.store.get('backuptargets', NS, 'default')
        assert target['last_synced_at'] == _iso(stored['status']['lastSyncedAt'])
        assert info['volumes'] == [] and info['system_backups'] == [] and info['last_ready_system_backup'] is None

        named = _info(lab, run_playbook, extra_vars={'info_backup_target': 'offsite'})
        assert named.rc != 0, str(named)
        assert 'offsite' in named.task_result(TASK)['msg'] and 'v1.7.2' in named.task_result(TASK)['msg']
