# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_pv_from_volume against the lab: restored volumes get their PVs and original claims back (CHECK -> apply ->
CHECK -> apply), and a claim that GitOps recreated on a fresh volume is a conflict that names both volumes."""

from __future__ import annotations

import pytest

from tests.integration.test_longhorn_volume_restore import NS, _backed_up_then_wiped, _wait

pytestmark = pytest.mark.integration

TASK = 'Create the PVs and claims'


def _restore_all(run_playbook):
    restored = run_playbook('longhorn_volume_restore.yml', extra_vars={'restore_all': True})
    assert restored.rc == 0, str(restored)


def test_claims_come_back_under_their_original_names(lab, run_playbook):
    volumes, _backups = _backed_up_then_wiped(lab, run_playbook, ('app-data', 'db-data'))
    # The rebuilt cluster has no apps namespace yet.
    lab.store.delete('namespaces', None, 'apps')
    _wait(lambda: lab.store.try_get('namespaces', None, 'apps') is None, 'namespace apps to go')
    _restore_all(run_playbook)

    results = []
    for check in (True, False, True, False):
        mark = lab.audit_mark()
        result = run_playbook('longhorn_pv_from_volume.yml', check=check, diff=True, extra_vars={'pv_create_namespaces': True})
        assert result.rc == 0, str(result)
        if check:
            assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
        results.append(result.task_result(TASK))
    assert [r['changed'] for r in results] == [True, True, False, False]
    assert results[0]['created_namespaces'] == ['apps'] and results[1]['created_namespaces'] == ['apps']
    assert [e['state'] for e in results[0]['volumes']] == ['Planned', 'Planned']
    assert [e['state'] for e in results[1]['volumes']] == ['Created', 'Created']
    assert results[3]['volumes'] == [], 'without volumes, only volumes that have no PV are chosen'
    named = run_playbook('longhorn_pv_from_volume.yml', extra_vars={'pv_volumes': sorted(volumes.values())})
    assert named.rc == 0, str(named)
    assert named.task_result(TASK)['changed'] is False
    assert [e['state'] for e in named.task_result(TASK)['volumes']] == ['Bound', 'Bound']

    for claim, volume in volumes.items():
        entry = next(e for e in results[1]['volumes'] if e['volume'] == volume)
        assert (entry['pvc_namespace'], entry['pvc_name'], entry['source']) == ('apps', claim, 'kubernetes_status')
        pvc = lab.store.get('persistentvolumeclaims', 'apps', claim)
        assert pvc['status']['phase'] == 'Bound' and pvc['spec']['volumeName'] == volume
        pv = lab.store.get('persistentvolumes', None, volume)
        spec = pv['spec']
        assert spec['csi']['driver'] == 'driver.longhorn.io' and spec['csi']['volumeHandle'] == volume
        assert spec['csi']['fsType'] == 'ext4' and spec['persistentVolumeReclaimPolicy'] == 'Retain'
        assert spec['capacity']['storage'] == lab.store.get('volumes', NS, volume)['spec']['size']
        assert spec['accessModes'] == ['ReadWriteOnce'] and spec['storageClassName'] == entry['storage_class']
        assert set(spec['csi']['volumeAttributes']) == {'numberOfReplicas', 'staleReplicaTimeout'}
        # Longhorn sees its PVC again (ref §1.5 kubernetesStatus).
        _wait(lambda v=volume, c=claim: (lab.store.get('volumes', NS, v)['status'].get('kubernetesStatus') or {}).get('pvName') == v,
              f'volume {volume} to know its PV')


def test_a_claim_bound_to_a_fresh_volume_is_a_conflict(lab, run_playbook):
    volumes, _backups = _backed_up_then_wiped(lab, run_playbook, ('app-data', 'db-data'))
    # GitOps redeployed the app before the restore: dynamic provisioning made a fresh, empty volume for db-data.
    lab.store.create('persistentvolumeclaims', {
        'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'db-data', 'namespace': 'apps'},
        'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn', 'resources': {'requests': {'storage': '64Mi'}}}},
        namespace='apps')
    fresh = _wait(lambda: lab.store.get('persistentvolumeclaims', 'apps', 'db-data')['spec'].get('volumeName'), 'the fresh claim to bind')
    _restore_all(run_playbook)

    mark = lab.audit_mark()
    result = run_playbook('longhorn_pv_from_volume.yml', extra_vars={'pv_volumes': sorted(volumes.values())})
    assert result.rc != 0, str(result)
    task = result.task_result(TASK)
    states = {e['volume']: e['state'] for e in task['volumes']}
    assert states == {volumes['app-data']: 'Created', volumes['db-data']: 'Failed'}, task
    error = next(e['error'] for e in task['volumes'] if e['volume'] == volumes['db-data'])
    assert f'PVC apps/db-data is bound to PV {fresh}' in error and f'volume {volumes["db-data"]}' in error, error
    assert lab.store.get('persistentvolumeclaims', 'apps', 'db-data')['spec']['volumeName'] == fresh, 'the conflicting claim was touched'
    assert not [w for w in lab.writes_since(mark) if w['path'].endswith('/persistentvolumeclaims/db-data')]
    assert lab.store.try_get('persistentvolumes', None, volumes['db-data']) is None
