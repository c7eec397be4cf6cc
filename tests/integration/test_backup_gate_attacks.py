# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The gate under attack (issue 10, part 1): the preflight playbook on the lab, with its default settings.

One lab walks what a careful, suspicious user tried: a claim released with its data kept (Retain), a block
deleted from the bucket, a backup stamped in the future, and evidence that cannot be collected (an API error,
an S3 error, a read that hangs). Each one must refuse and name its cause; the explicit waivers pass, and are
printed and logged.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import wait_until as _wait
from tests.integration.test_backup_gate import GATE, LONGHORN_NAMESPACE, gate, others, prepare, reasons, task
from tests.integration.test_longhorn_volume_backup import NAMESPACE, setup_backups

pytestmark = pytest.mark.integration

FUTURE = '2030-06-01T00:00:00Z'


def release_claim(lab, claim, volume):
    """What `kubectl patch pv --type merge -p '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}'` and
    `kubectl delete pvc` do: the PV is Released, the Longhorn volume and its data stay, no PVC claims them."""
    lab.store.modify('persistentvolumes', None, volume,
                     lambda pv: pv['spec'].update(persistentVolumeReclaimPolicy='Retain'))
    lab.store.delete('persistentvolumeclaims', NAMESPACE, claim)
    _wait(lambda: ((lab.store.get('volumes', LONGHORN_NAMESPACE, volume).get('status') or {}).get('kubernetesStatus') or {})
          .get('pvStatus') == 'Released', what=f'volume {volume} to see its PV Released')


def attach_and_detach(lab, volume):
    """Longhorn reports a volume's data (status.actualSize) once it was attached and detached again; a snapshot
    auto-attaches and detaches the volume (ref §1.6), the way a pod that wrote the data would."""
    lab.store.create('snapshots', {'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Snapshot',
                                   'metadata': {'name': f'{volume[:40]}-flush', 'namespace': LONGHORN_NAMESPACE,
                                                'labels': {'longhornvolume': volume}},
                                   'spec': {'volume': volume, 'createSnapshot': True}}, namespace=LONGHORN_NAMESPACE)
    _wait(lambda: int((lab.store.get('volumes', LONGHORN_NAMESPACE, volume).get('status') or {}).get('actualSize') or 0) > 0
          and lab.store.get('volumes', LONGHORN_NAMESPACE, volume)['status'].get('state') == 'detached',
          what=f'volume {volume} to report its data after a detach')


def test_gate_refuses_what_it_cannot_restore(lab, run_playbook, tmp_path):
    volumes = setup_backups(lab, run_playbook)
    app, db = f'{NAMESPACE}/app-data', f'{NAMESPACE}/db-data'
    kept = volumes['logs-data']
    step = prepare(run_playbook, prepare_volumes=[volumes['app-data'], volumes['db-data']], prepare_system_backup='gate-sb',
                   prepare_export='bucket', prepare_export_dest=str(tmp_path / 'export'))
    backups = {entry['volume']: entry['backup'] for entry in step.task_result('Back up the volumes')['backups']}
    log = tmp_path / 'gate.jsonl'

    # Finding 5: the claim of a volume that was never backed up is deleted, its Retain PV keeps the data.
    attach_and_detach(lab, kept)
    release_claim(lab, 'logs-data', kept)
    _result, verdict = gate(lab, run_playbook, expect_pass=False)
    [finding] = verdict['findings']
    assert finding['scope'] == 'unclaimed_volume' and finding['subject'] == f'unclaimed volume {kept} (PVC {NAMESPACE}/logs-data is gone)'
    assert 'it would be lost on teardown: no backup' in finding['reason'] and 'holds 0 bytes' not in finding['reason']
    assert verdict['unclaimed_volumes'][0]['actual_size'] > 0

    # ... accepted by name: passes, printed and logged.
    result, verdict = gate(lab, run_playbook, expect_pass=True, backup_gate_accepted_unclaimed_volumes=[kept],
                           backup_gate_override_log=str(log))
    assert verdict['findings'] == [] and len(verdict['waivers']) == 1 and kept in verdict['waivers'][0]
    warned = task(result, 'Warn about what the user waived')['results']
    assert [item['msg'] for item in warned] == ['[WARNING] backup gate check WAIVED: ' + verdict['waivers'][0]]
    assert json.loads(log.read_text(encoding='utf-8').splitlines()[-1])['waivers'] == verdict['waivers']
    accepted = {'backup_gate_accepted_unclaimed_volumes': [kept]}

    # Finding 1: one block of app-data's newest backup is deleted from the bucket; the defaults refuse.
    lab.damage_block(volumes['app-data'], backups[volumes['app-data']], mode='delete')
    _result, verdict = gate(lab, run_playbook, expect_pass=False, **accepted)
    assert reasons(verdict) == {app: [f'backup {backups[volumes["app-data"]]} cannot be restored: 1 block(s) missing from the bucket']}

    # ... the explicit opt-out passes, and is printed and logged like an override.
    result, verdict = gate(lab, run_playbook, expect_pass=True, backup_gate_bucket_integrity='none',
                           backup_gate_override_log=str(log), **accepted)
    assert verdict['waivers'][0].startswith('block check turned off (block_check=false, bucket integrity none)')
    assert json.loads(log.read_text(encoding='utf-8').splitlines()[-1])['waivers'] == verdict['waivers']

    # Finding 2: db-data's backup is stamped in 2030 (as Longhorn reports it: backupCreatedAt / snapshotCreatedAt).
    lab.store.modify('backups', LONGHORN_NAMESPACE, backups[volumes['db-data']],
                     lambda backup: backup['status'].update(backupCreatedAt=FUTURE, snapshotCreatedAt=FUTURE), subresource='status')
    _result, verdict = gate(lab, run_playbook, expect_pass=False, backup_gate_bucket_integrity='none', **accepted)
    [reason] = reasons(verdict)[db]
    assert reason.startswith(f'last completed backup {backups[volumes["db-data"]]} is dated ') and 'in the future' in reason, reason

    # Missing evidence: an API error, an S3 error, a read that hangs; each is a refusal that names it.
    lab.api_fault(r'/apis/longhorn\.io/v1beta2/namespaces/longhorn-system/volumes$', status=500, methods=['GET'])
    _result, verdict = gate(lab, run_playbook, expect_pass=False, **accepted)
    [(scope, reason)] = [item for item in others(verdict) if item[0] == 'longhorn']
    assert 'Failed to list Volume' in reason and 'injected fault' in reason, reason
    lab.clear_faults()

    lab.s3_fault('error', status=503)
    _result, verdict = gate(lab, run_playbook, expect_pass=False, **accepted)
    bucket = [reason for scope, reason in others(verdict) if scope == 'bucket']
    assert bucket == [f'cannot be read: Failed to list objects in bucket {lab.bucket}: ServiceUnavailable - The service is '
                      'unavailable. Please retry.'], bucket
    lab.clear_faults()

    lab.api_fault(r'/apis/longhorn\.io/v1beta2/namespaces/longhorn-system/backups$', timeout=120, methods=['GET'])
    result = run_playbook(GATE, extra_vars={'backup_gate_timeout': 5, **accepted})
    assert result.rc != 0
    verdict = task(result, 'Record the verdict for AWX')['ansible_stats']['data']['backup_gate']
    [(scope, reason)] = [item for item in others(verdict) if item[0] == 'longhorn']
    assert 'Timed out after 5 second(s)' in reason and 'backup_gate_timeout=5' in reason, reason
    lab.clear_faults()
