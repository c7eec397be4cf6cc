# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_volume_restore against the lab: after a wipe, the CHECK -> apply -> CHECK -> apply rhythm, data and spec
of the restored volumes, a conflicting volume, and one failing restore that does not stop the others."""

from __future__ import annotations


import pytest

from tests.integration.helpers import volume_file as _data
from tests.integration.helpers import wait_until as _wait
from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration

TASK = 'Restore the volumes'
NS = 'longhorn-system'


def _backed_up_then_wiped(lab, run_playbook, claims):
    """Claims with data, a backup of each, then a wiped cluster whose new target has synced every Backup CR."""
    volumes = setup_backups(lab, run_playbook, claims=claims)
    backup = run_playbook('longhorn_volume_backup.yml')
    assert backup.rc == 0, str(backup)
    backups = {b['volume']: b for b in backup.task_result('Back up the volumes')['backups']}
    lab.wipe_cluster()
    rebuilt = run_playbook('longhorn_volume_backup_setup.yml', extra_vars={'setup_claims': []})
    assert rebuilt.rc == 0, str(rebuilt)

    def synced():
        items, _version = lab.store.list('backups', NS)
        return {b['metadata']['name'] for b in items if (b.get('status') or {}).get('state') == 'Completed'} >= \
            {b['backup'] for b in backups.values()}
    _wait(synced, 'the Backup CRs to sync from the bucket')
    return volumes, backups


def test_restore_rhythm_after_a_wipe(lab, run_playbook):
    volumes, backups = _backed_up_then_wiped(lab, run_playbook, ('app-data', 'db-data'))
    results = []
    for check in (True, False, True, False):
        mark = lab.audit_mark()
        result = run_playbook('longhorn_volume_restore.yml', check=check, diff=True,
                              extra_vars={'restore_namespaces': ['apps'], 'restore_replicas': 2, 'restore_concurrency': 1})
        assert result.rc == 0, str(result)
        if check:
            assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
        results.append(result.task_result(TASK))
    assert [r['changed'] for r in results] == [True, True, False, False]
    assert [e['state'] for e in results[0]['volumes']] == ['Planned', 'Planned']
    assert [e['state'] for e in results[1]['volumes']] == ['Restored', 'Restored']
    assert [e['state'] for e in results[3]['volumes']] == ['AlreadyRestored', 'AlreadyRestored']

    for claim, volume in volumes.items():
        entry = next(e for e in results[1]['volumes'] if e['volume'] == volume)
        assert entry['backup'] == backups[volume]['backup'] and entry['pvc_namespace'] == 'apps' and entry['pvc_name'] == claim
        assert entry['rpo_seconds'] >= 0 and entry['duration'] > 0 and entry['access_mode'] == 'rwo'
        restored = lab.store.get('volumes', NS, volume)
        backup_cr = lab.store.get('backups', NS, entry['backup'])
        assert restored['spec']['size'] == backup_cr['status']['volumeSize'] == str(entry['size'])
        assert restored['spec']['frontend'] == 'blockdev' and restored['spec']['numberOfReplicas'] == 2
        assert restored['metadata']['annotations']['longhorn-dr.homelab/restored-from'] == entry['backup_url']
        assert restored['status']['state'] == 'detached' and restored['status']['restoreRequired'] is False
        # The original PVC, from the backup's KubernetesStatus label (ref §1.5 step 2).
        assert restored['status']['kubernetesStatus']['pvcName'] == claim
        assert _data(lab, volume) == f'{claim} payload\n' * 1000, f'{volume} came back without its data'


def test_conflicts_and_failures_do_not_stop_the_others(lab, run_playbook):
    volumes, _backups = _backed_up_then_wiped(lab, run_playbook, ('app-data', 'db-data', 'logs-data'))
    conflicting, failing, fine = volumes['app-data'], volumes['db-data'], volumes['logs-data']
    # A volume of the same name that did not come from the backup (e.g. created by hand after the rebuild).
    lab.store.create('volumes', {'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Volume',
                                 'metadata': {'name': conflicting, 'namespace': NS},
                                 'spec': {'size': '67108864', 'frontend': 'blockdev', 'numberOfReplicas': 1}}, namespace=NS)
    lab.fail_restore(failing)

    mark = lab.audit_mark()
    result = run_playbook('longhorn_volume_restore.yml', extra_vars={'restore_all': True})
    assert result.rc != 0, str(result)
    task = result.task_result(TASK)
    states = {e['volume']: e['state'] for e in task['volumes']}
    assert states == {conflicting: 'Failed', failing: 'Failed', fine: 'Restored'}, task
    assert sorted(task['failed_volumes']) == sorted([conflicting, failing])
    assert task['msg'].startswith('2 of 3 volumes failed to restore') and conflicting in task['msg'] and failing in task['msg']
    assert 'never overwritten' in next(e['error'] for e in task['volumes'] if e['volume'] == conflicting)
    assert _data(lab, fine) == 'logs-data payload\n' * 1000
    # The conflicting volume was never touched (a create under its name could only be refused: it exists).
    assert not [w for w in lab.writes_since(mark) if w['path'].endswith(f'/volumes/{conflicting}')]
    assert 'fromBackup' not in lab.store.get('volumes', NS, conflicting)['spec']

    # The conflicting volume's data can still come back, under another name, beside it.
    # (Longhorn refuses volume names of 40 characters or more, and pvc-<uid> already has 40.)
    copy = run_playbook('longhorn_volume_restore.yml', extra_vars={'restore_volumes': [conflicting], 'restore_as': 'app-data-restored'})
    assert copy.rc == 0, str(copy)
    entry = copy.task_result(TASK)['volumes'][0]
    assert (entry['volume'], entry['source_volume'], entry['state']) == ('app-data-restored', conflicting, 'Restored')
    assert _data(lab, 'app-data-restored') == 'app-data payload\n' * 1000
    assert 'fromBackup' not in lab.store.get('volumes', NS, conflicting)['spec']
