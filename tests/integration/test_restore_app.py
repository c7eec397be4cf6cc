# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore_app role (playbook homelab.longhorn_dr.restore_app) against the lab.

An app with 1000 rows on a dynamically provisioned claim (reclaim policy Delete) is backed up and exported with a
row-count baseline. Without confirmation the role refuses and writes nothing, check mode writes nothing; after the
data is damaged, the confirmed restore brings the 1000 rows back on a new volume under the same claim name, keeps
the old volume, and verifies against the baseline; a re-run changes nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tests.integration.test_cluster_state import start_app
from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration

PLAYBOOK = 'homelab.longhorn_dr.restore_app'
ROLE = 'homelab.longhorn_dr.restore_app : '
NS = 'apps'
LH = 'longhorn-system'


def rows(lab, volume):
    db = sqlite3.connect(os.path.join(lab.ctx.volume_data_dir(volume), 'app.db'))
    try:
        return db.execute('select count(*) from t').fetchone()[0]
    finally:
        db.close()


def plan_of(result):
    return result.task_result(ROLE + 'Plan the restore')['ansible_facts']['restore_app__plan']


def test_refuse_then_restore_one_app(lab, run_playbook, tmp_path):
    old_volume = setup_backups(lab, run_playbook, claims=('app-data',))['app-data']
    start_app(lab, old_volume)
    backup = run_playbook('longhorn_volume_backup.yml', extra_vars={'backup_volumes': [old_volume]})
    assert backup.rc == 0, str(backup)
    backup_name = backup.task_result('Back up the volumes')['backups'][0]['backup']
    dest = tmp_path / 'cluster-state'
    export = run_playbook('cluster_state.yml', extra_vars={'cluster_state_dest': str(dest)})
    assert export.rc == 0, str(export)
    assert json.loads((dest / 'manifest.json').read_text())['baselines'][0]['stdout'] == '1000\n'
    old_pv = lab.store.get('persistentvolumeclaims', NS, 'app-data')['spec']['volumeName']
    assert lab.store.get('persistentvolumes', None, old_pv)['spec']['persistentVolumeReclaimPolicy'] == 'Delete'
    base = {'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'restore_app_namespace': NS, 'restore_app_pvcs': ['app-data'],
            'restore_app_cluster_state_dir': str(dest), 'restore_app_scale_timeout': 60}

    # Without confirmation: the plan, a refusal that names what would be deleted, and no write at all.
    mark = lab.audit_mark()
    refused = run_playbook(PLAYBOOK, extra_vars=base)
    assert refused.rc != 0, str(refused)
    assert lab.writes_since(mark) == [], 'the refusal wrote to the cluster'
    message = refused.task_result(ROLE + 'Refuse to delete without confirmation')['msg']
    assert 'restore_app_confirm_delete=true' in message and 'delete PVC apps/app-data' in message, message
    assert f'delete PV object {old_pv}' in message and 'scale to 0: app' in message, message
    [claim] = plan_of(refused)['claims']
    assert (claim['state'], claim['backup'], claim['source_volume'], claim['pv_reclaim_policy']) == ('restore', backup_name, old_volume, 'Delete')
    assert claim['new_volume'].startswith('app-data-r') and len(claim['new_volume']) <= 39
    assert plan_of(refused)['workloads'] == [{'kind': 'Deployment', 'name': 'app', 'namespace': NS, 'current_replicas': 1,
                                              'replicas': 1, 'recorded': False}]

    # Check mode, even confirmed: the same plan, no write.
    mark = lab.audit_mark()
    checked = run_playbook(PLAYBOOK, check=True, extra_vars={**base, 'restore_app_confirm_delete': True})
    assert checked.rc == 0, str(checked)
    assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
    assert plan_of(checked)['claims'][0]['state'] == 'restore'

    # The app's data is damaged; the confirmed restore brings the backup back under the same claim name.
    db = sqlite3.connect(os.path.join(lab.ctx.volume_data_dir(old_volume), 'app.db'))
    db.execute('delete from t where n >= 10')
    db.commit()
    db.close()
    assert rows(lab, old_volume) == 10
    restored = run_playbook(PLAYBOOK, extra_vars={**base, 'restore_app_confirm_delete': True})
    assert restored.rc == 0, str(restored)
    new_volume = plan_of(restored)['claims'][0]['new_volume']
    pvc = lab.store.get('persistentvolumeclaims', NS, 'app-data')
    new_pv = lab.store.get('persistentvolumes', None, pvc['spec']['volumeName'])
    assert pvc['status']['phase'] == 'Bound' and new_pv['spec']['csi']['volumeHandle'] == new_volume
    assert pvc['spec']['storageClassName'] == 'longhorn', 'the claim keeps its StorageClass'
    assert rows(lab, new_volume) == 1000
    # The old volume is kept as a fallback, damaged as it was; its PV object is gone.
    assert rows(lab, old_volume) == 10
    assert lab.store.try_get('persistentvolumes', None, old_pv) is None
    deployment = lab.store.get('deployments', NS, 'app')
    assert deployment['spec']['replicas'] == 1 and deployment['status'].get('readyReplicas') == 1
    assert 'longhorn-dr.homelab/restore-app-replicas' not in (deployment['metadata'].get('annotations') or {})
    annotations = lab.store.get('volumes', LH, new_volume)['metadata']['annotations']
    assert annotations['longhorn-dr.homelab/restore-app-claim'] == 'apps/app-data'
    assert annotations['longhorn-dr.homelab/restore-app-replaces'] == old_volume
    summary = restored.task_result(ROLE + 'Summarize the restore')['ansible_facts']['restore_app__result']
    assert summary['old_volumes_kept'] == [old_volume] and summary['reclaim_policy_changed'] == [old_pv]
    assert f'old volume {old_volume} kept as a fallback' in summary['summary']
    assert restored.output['global_custom_stats']['restore_app']['namespace'] == NS
    verdict = restored.task_result('homelab.longhorn_dr.verify_restore : Judge the restore')['ansible_facts']['verify_restore__result']
    assert verdict['passed'] is True, verdict['report']
    assert [(c['name'], c['actual'], c['status']) for c in verdict['checks']] == [('app-rows', '1000', 'OK')]
    assert verdict['pvcs'][0]['volume'] == new_volume

    # A re-run finds the claim already on a volume restored from that backup: nothing to do, nothing written.
    mark = lab.audit_mark()
    again = run_playbook(PLAYBOOK, extra_vars={**base, 'restore_app_confirm_delete': True, 'restore_app_verify': False})
    assert again.rc == 0, str(again)
    assert plan_of(again)['claims'][0]['state'] == 'done'
    assert lab.writes_since(mark) == [] and again.changed() == 0

    for run in (refused, checked, restored, again):
        assert not run.mentions(lab.secret_key)


def test_an_interrupted_restore_resumes(lab, run_playbook):
    old_volume = setup_backups(lab, run_playbook, claims=('app-data',))['app-data']
    start_app(lab, old_volume)
    backup = run_playbook('longhorn_volume_backup.yml', extra_vars={'backup_volumes': [old_volume]})
    assert backup.rc == 0, str(backup)
    base = {'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'restore_app_namespace': NS, 'restore_app_pvcs': 'app-data',
            'restore_app_confirm_delete': True, 'restore_app_scale_timeout': 60,
            'restore_app_verify_checks': [{'name': 'rows', 'namespace': NS, 'label_selector': 'app=app', 'expect_number': 1000,
                                           'command': 'python3 -c "import sqlite3; print(sqlite3.connect(\'/data/app.db\')'
                                                      '.execute(\'select count(*) from t\').fetchone()[0])"'}]}

    # The run stops after the claim was deleted: the API refuses to create the new PV.
    fault = lab.api_fault(r'/api/v1/persistentvolumes$', methods=['POST'], status=403)
    interrupted = run_playbook(PLAYBOOK, extra_vars=base)
    assert interrupted.rc != 0, str(interrupted)
    new_volume = plan_of(interrupted)['claims'][0]['new_volume']
    assert lab.store.try_get('persistentvolumeclaims', NS, 'app-data') is None
    deployment = lab.store.get('deployments', NS, 'app')
    assert deployment['spec']['replicas'] == 0
    assert deployment['metadata']['annotations']['longhorn-dr.homelab/restore-app-replicas'] == '1'
    assert fault.id and lab.store.try_get('volumes', LH, old_volume) is not None
    lab.clear_faults()

    # The re-run finds the new volume by its annotations, binds the claim to it and scales the app back to 1.
    resumed = run_playbook(PLAYBOOK, extra_vars=base)
    assert resumed.rc == 0, str(resumed)
    [claim] = plan_of(resumed)['claims']
    assert (claim['state'], claim['new_volume'], claim['pvc_exists'], claim['current_volume']) == ('resume', new_volume, False, old_volume)
    restore = resumed.task_result(ROLE + "Restore each claim's backup into a new volume beside the old one")
    assert restore['volumes'][0]['state'] == 'AlreadyRestored' and restore['changed'] is False
    assert resumed.task_result(ROLE + 'Delete the claims').get('skipped') is True, 'the claim was already gone'
    pvc = lab.store.get('persistentvolumeclaims', NS, 'app-data')
    assert lab.store.get('persistentvolumes', None, pvc['spec']['volumeName'])['spec']['csi']['volumeHandle'] == new_volume
    assert rows(lab, new_volume) == 1000
    assert lab.store.get('deployments', NS, 'app')['spec']['replicas'] == 1
    verdict = resumed.task_result('homelab.longhorn_dr.verify_restore : Judge the restore')['ansible_facts']['verify_restore__result']
    assert verdict['passed'] is True and [c['status'] for c in verdict['checks']] == ['OK'], verdict['report']
    volumes = {v['metadata']['name'] for v in lab.store.list('volumes', LH)[0]}
    assert volumes == {old_volume, new_volume}, 'nothing duplicated, the old volume kept'
