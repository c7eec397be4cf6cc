# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""longhorn_pv_from_volume against the lab: restored volumes get their PVs and original claims back (CHECK -> apply ->
CHECK -> apply), and a claim that GitOps recreated on a fresh volume is a conflict that names both volumes."""

from __future__ import annotations

import os

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


def _gitops_app(lab, claim):
    """What GitOps does before the restore: the claim (dynamically provisioned) and a Deployment that mounts it."""
    lab.store.create('persistentvolumeclaims', {
        'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': claim, 'namespace': 'apps'},
        'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn', 'resources': {'requests': {'storage': '64Mi'}}}},
        namespace='apps')
    lab.store.create('deployments', {
        'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': claim, 'namespace': 'apps'},
        'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': claim}},
                 'template': {'metadata': {'labels': {'app': claim}},
                              'spec': {'containers': [{'name': 'app', 'image': 'python:3.11-slim',
                                                       'volumeMounts': [{'name': 'data', 'mountPath': '/data'}]}],
                                       'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': claim}}]}}}},
        namespace='apps')
    fresh = _wait(lambda: lab.store.get('persistentvolumeclaims', 'apps', claim)['spec'].get('volumeName'), f'claim {claim} to bind')
    _wait(lambda: (lab.store.get('deployments', 'apps', claim).get('status') or {}).get('readyReplicas') == 1, f'deployment {claim}')
    return fresh


def test_a_claim_bound_to_a_fresh_volume_is_a_conflict_and_replace_empty_swaps_only_empty_ones(lab, run_playbook):
    volumes, _backups = _backed_up_then_wiped(lab, run_playbook, ('app-data', 'db-data'))
    # GitOps redeployed both apps before the restore: dynamic provisioning made fresh volumes for both claims.
    fresh_db = _gitops_app(lab, 'db-data')
    fresh_app = _gitops_app(lab, 'app-data')
    # The app already wrote to its fresh volume: that data must never be replaced.
    with open(os.path.join(lab.ctx.volume_data_dir(fresh_app), 'new.txt'), 'w', encoding='utf-8') as handle:
        handle.write('written after the rebuild\n')
    _restore_all(run_playbook)

    mark = lab.audit_mark()
    result = run_playbook('longhorn_pv_from_volume.yml', extra_vars={'pv_volumes': sorted(volumes.values())})
    assert result.rc != 0, str(result)
    task = result.task_result(TASK)
    assert {e['volume']: e['state'] for e in task['volumes']} == {volumes['app-data']: 'Failed', volumes['db-data']: 'Failed'}, task
    error = next(e['error'] for e in task['volumes'] if e['volume'] == volumes['db-data'])
    assert f'PVC apps/db-data is bound to PV {fresh_db}' in error and f'volume {volumes["db-data"]}' in error, error
    assert lab.writes_since(mark) == [], 'a conflict must not change anything'

    checked = run_playbook('longhorn_pv_from_volume.yml', check=True, extra_vars={'pv_volumes': sorted(volumes.values()), 'pv_replace_empty': True})
    assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
    planned = {e['volume']: e for e in checked.task_result(TASK)['volumes']}
    assert planned[volumes['db-data']]['replaced']['old_volume'] == fresh_db
    assert planned[volumes['db-data']]['replaced']['workloads'] == ['Deployment/db-data=1']

    replaced = run_playbook('longhorn_pv_from_volume.yml', extra_vars={'pv_volumes': sorted(volumes.values()), 'pv_replace_empty': True})
    assert replaced.rc != 0, 'the claim on a volume with data is still a failure'
    task = {e['volume']: e for e in replaced.task_result(TASK)['volumes']}
    db, app = task[volumes['db-data']], task[volumes['app-data']]
    assert db['state'] == 'Created' and db['replaced']['old_volume'] == fresh_db and db['replaced']['old_volume_bytes'] == 0, db
    assert app['state'] == 'Failed' and 'holds 26 bytes of data' in app['error'] and app['replaced'] is None, app
    # db-data now holds the restored volume, its app runs again, and the fresh volume is kept (Retain).
    assert lab.store.get('persistentvolumeclaims', 'apps', 'db-data')['spec']['volumeName'] == volumes['db-data']
    _wait(lambda: (lab.store.get('deployments', 'apps', 'db-data').get('status') or {}).get('readyReplicas') == 1, 'db-data to run again')
    assert lab.store.try_get('volumes', NS, fresh_db) is not None
    # app-data was left as it was: same claim, same volume, its Deployment scaled back.
    assert lab.store.get('persistentvolumeclaims', 'apps', 'app-data')['spec']['volumeName'] == fresh_app
    assert lab.store.get('deployments', 'apps', 'app-data')['spec']['replicas'] == 1
    assert lab.store.try_get('persistentvolumes', None, volumes['app-data']) is None
