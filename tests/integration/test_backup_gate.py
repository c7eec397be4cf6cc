# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pre-teardown gate (playbook homelab.longhorn_dr.preflight) on the lab, scenario after scenario.

Each test walks several of issue 3's scenarios on one lab, because a lab and every playbook run cost
seconds: no backups at all (the real case), a volume without a backup, no system backup, a failed
backup, everything fresh, a cluster-state export that is too old, a stale volume, the backup target
unavailable (wrong credentials), backups Longhorn reports that the bucket lost, and the override
with and without a reason.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest

from tests.integration.helpers import wait_until as _wait
from tests.integration.test_longhorn_volume_backup import NAMESPACE, setup_backups

pytestmark = pytest.mark.integration

LONGHORN_NAMESPACE = 'longhorn-system'
GATE = 'backup_gate_lab.yml'
PREPARE = 'backup_gate_prepare.yml'
REPORT_TASK = 'Report what is protected and what is not'
REFUSE_TASK = 'Refuse the teardown'
WRONG_SECRET = 'WrongGateSecret0123456789abcdef'


def task(result, name):
    """The result of the gate role's task ``name`` (ansible prefixes role tasks with the role name)."""
    return result.task_result(f'homelab.longhorn_dr.backup_gate : {name}')


def recorded(result):
    return task(result, 'Record the verdict for AWX')['ansible_stats']['data']['backup_gate']


def gate(lab, run_playbook, expect_pass, **extra_vars):
    """One gate run that succeeds (``expect_pass``) or fails; returns (result, the verdict it recorded with set_stats)."""
    result = run_playbook(GATE, extra_vars=extra_vars)
    assert (result.rc == 0) == expect_pass, str(result)
    assert not result.mentions(lab.secret_key), 'the S3 secret key appeared in the output'
    verdict = recorded(result)
    assert verdict['passed'] is (not verdict['findings'])
    if not expect_pass and not verdict.get('overridden'):
        assert task(result, REFUSE_TASK)['msg'] == verdict['summary']
    return result, verdict


def reasons(verdict):
    return {entry['pvc']: entry['reasons'] for entry in verdict['unprotected_volumes']}


def others(verdict):
    return [(item['scope'], item['reason']) for item in verdict['findings'] if item['scope'] != 'volume']


def prepare(run_playbook, **extra_vars):
    result = run_playbook(PREPARE, extra_vars=extra_vars)
    assert result.rc == 0, str(result)
    return result


def backups_of(result):
    return {entry['volume']: entry for entry in result.task_result('Back up the volumes')['backups']}


def test_gate_refuses_until_everything_is_protected(lab, run_playbook, tmp_path):
    """Bucket-side export; the scenarios in the order a broken cluster gets repaired."""
    volumes = setup_backups(lab, run_playbook)
    app, db, logs = (f'{NAMESPACE}/{claim}' for claim in ('app-data', 'db-data', 'logs-data'))

    # 1. No backups at all - the real case (the CSI driver was broken). Run with -vvv: no secret anywhere.
    result = run_playbook(GATE, verbosity=3)
    assert result.rc != 0, str(result)
    assert not result.mentions(lab.secret_key)
    verdict = recorded(result)
    assert verdict['passed'] is False
    assert reasons(verdict) == {app: ['no backup'], db: ['no backup'], logs: ['no backup']}
    assert ('system_backup', 'no Ready system backup') in others(verdict)
    assert ('cluster_state', 'does not exist') in others(verdict)
    report = task(result, REPORT_TASK)['msg']
    assert report[0].startswith('Backup gate REFUSED (max_age 1d): 3 of 3 bound volume(s) unprotected')
    assert f'  - {db} ({volumes["db-data"]}): no backup' in report
    refusal = task(result, REFUSE_TASK)['msg']
    assert refusal.startswith('Backup gate refused (max_age 1d): 3 unprotected volume(s): ') and 'no Ready system backup' in refusal

    # 2. Two of three volumes backed up and the state exported to the bucket, no system backup yet.
    prepare(run_playbook, prepare_volumes=[volumes['app-data'], volumes['db-data']], prepare_export='bucket',
            prepare_export_dest=str(tmp_path / 'export'))
    _result, verdict = gate(lab, run_playbook, expect_pass=False)
    assert reasons(verdict) == {logs: ['no backup']}
    assert others(verdict) == [('system_backup', 'no Ready system backup')]
    assert {entry['pvc'] for entry in verdict['protected_volumes']} == {app, db}
    assert verdict['cluster_state']['location'].startswith('cluster-state/')

    # 3. The third volume's backup fails; the system backup is there now.
    lab.fail_backup(volumes['logs-data'])
    step = prepare(run_playbook, prepare_volumes=[volumes['logs-data']], prepare_system_backup='gate-sb')
    failed = backups_of(step)[volumes['logs-data']]
    assert failed['state'] == 'Error', failed
    _result, verdict = gate(lab, run_playbook, expect_pass=False)
    assert list(reasons(verdict)) == [logs]
    assert reasons(verdict)[logs][0].startswith(f'no completed backup; last backup {failed["backup"]} failed: ')
    assert others(verdict) == []

    # 4. Repaired: everything fresh, the gate passes and says so.
    lab.clear_faults()
    prepare(run_playbook, prepare_volumes=[volumes['logs-data']])
    result, verdict = gate(lab, run_playbook, expect_pass=True)
    assert verdict['findings'] == [] and len(verdict['protected_volumes']) == 3
    assert verdict['system_backup']['name'] == 'gate-sb'
    assert task(result, REPORT_TASK)['msg'][0] == (
        'Backup gate PASSED (max_age 1d): 0 of 3 bound volume(s) unprotected, 0 other finding(s)')
    assert task(result, REFUSE_TASK).get('skipped') is True

    # 5. Longhorn still says Completed, but the bucket lost one volume's backups: not protected.
    s3 = lab.ctx.s3_client()
    lost = [obj['Key'] for page in s3.get_paginator('list_objects_v2').paginate(Bucket=lab.bucket, Prefix='backupstore/volumes/')
            for obj in page.get('Contents', []) if f'/{volumes["app-data"]}/' in obj['Key']]
    assert lost
    for key in lost:
        s3.delete_object(Bucket=lab.bucket, Key=key)
    _result, verdict = gate(lab, run_playbook, expect_pass=False)
    [reason] = reasons(verdict)[app]
    assert reason.startswith('backup backup-') and reason.endswith(
        ' is not in the bucket (the bucket has no complete backup of this volume)'), reason
    assert others(verdict) == []


def test_gate_stale_export_stale_volume_target_unavailable_and_override(lab, run_playbook, tmp_path):
    """Local export; from a passing gate to each kind of staleness, wrong credentials, and the override."""
    volumes = setup_backups(lab, run_playbook, claims=('app-data', 'db-data'))
    app, db = f'{NAMESPACE}/app-data', f'{NAMESPACE}/db-data'
    export = tmp_path / 'export'
    step = prepare(run_playbook, prepare_volumes=list(volumes.values()), prepare_system_backup='gate-sb',
                   prepare_export='local', prepare_export_dest=str(export))
    local = {'backup_gate_cluster_state_source': 'local', 'backup_gate_cluster_state_dir': str(export)}

    # 1. Everything fresh. The gate only reads: nothing written to the cluster.
    mark = lab.audit_mark()
    _result, verdict = gate(lab, run_playbook, expect_pass=True, **local)
    assert lab.writes_since(mark) == []
    assert verdict['cluster_state']['location'] == str(export / 'manifest.json')

    # 2. The export is two days old.
    manifest_path = export / 'manifest.json'
    manifest = json.loads(manifest_path.read_text(encoding='utf-8'))
    fresh_manifest = manifest_path.read_text(encoding='utf-8')
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)).strftime('%Y-%m-%dT%H:%M:%SZ')
    manifest_path.write_text(json.dumps(dict(manifest, exported_at=old)), encoding='utf-8')
    # 3. ... and one volume's newest completed backup is too (as Longhorn reports it: backupCreatedAt).
    stale_backup = backups_of(step)[volumes['db-data']]['backup']
    lab.store.modify('backups', LONGHORN_NAMESPACE, stale_backup,
                     lambda backup: backup['status'].update(backupCreatedAt=old, snapshotCreatedAt=old), subresource='status')
    _result, verdict = gate(lab, run_playbook, expect_pass=False, **local)
    assert reasons(verdict) == {db: [f'last completed backup {stale_backup} is 2d old (max_age 1d)']}
    assert others(verdict) == [('cluster_state', f'exported at {old}, 2d old (max_age 1d)')]
    assert [entry['pvc'] for entry in verdict['protected_volumes']] == [app]
    manifest_path.write_text(fresh_manifest, encoding='utf-8')

    # 4. Wrong credentials in Longhorn's Secret: the target becomes unavailable.
    secret = base64.b64encode(WRONG_SECRET.encode()).decode()
    lab.store.modify('secrets', LONGHORN_NAMESPACE, 'minio-credentials',
                     lambda obj: obj.setdefault('data', {}).update(AWS_SECRET_ACCESS_KEY=secret))
    from tests.lab.longhorn import common  # pylint: disable=import-outside-toplevel
    common.request_sync(lab.store, 'backuptargets', 'default')
    _wait(lambda: (lab.store.get('backuptargets', LONGHORN_NAMESPACE, 'default').get('status') or {}).get('available') is False,
          what='BackupTarget default to become unavailable')
    result, verdict = gate(lab, run_playbook, expect_pass=False, **local)
    assert reasons(verdict) == {db: [f'last completed backup {stale_backup} is 2d old (max_age 1d)']}
    [(scope, reason)] = others(verdict)
    assert scope == 'backup_target' and reason.startswith('not available: '), reason
    assert not result.mentions(WRONG_SECRET)

    # 5. An override without a reason stops before reading anything, naming the variable.
    result = run_playbook(GATE, extra_vars={'backup_gate_override': True, **local})
    assert result.rc != 0
    assert 'backup_gate_override_reason must say why' in task(result, 'Check that an override says why')['msg']

    # 6. With a reason it passes, warns, records and logs the reason and the findings.
    log = tmp_path / 'overrides.jsonl'
    reason = 'lab teardown: db-data is scratch data'
    result, verdict = gate(lab, run_playbook, expect_pass=True, backup_gate_override=True, backup_gate_override_reason=reason,
                           backup_gate_override_log=str(log), **local)
    assert result.rc == 0, str(result)
    assert (verdict['passed'], verdict['overridden'], verdict['override_reason']) == (False, True, reason)
    warning = task(result, 'Warn that the gate was overridden')['msg']
    assert warning.startswith('[WARNING] backup gate OVERRIDDEN despite 2 finding(s); reason: ' + reason)
    assert task(result, REFUSE_TASK).get('skipped') is True
    [line] = log.read_text(encoding='utf-8').splitlines()
    entry = json.loads(line)
    assert entry['reason'] == reason and entry['time'] == verdict['evaluated_at']
    assert entry['findings'] == verdict['messages'] and any(volumes['db-data'] in item for item in entry['findings'])
