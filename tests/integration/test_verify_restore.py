# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The verify_restore role (playbook homelab.longhorn_dr.verify_cluster) against the lab.

An app with 1000 rows on a Longhorn claim is exported with a row-count baseline (cluster_state role);
its pod is then replaced (a new name, as after a restore). Verification passes, in check mode too without writing;
then 500 rows go missing and it fails naming the baseline, unless the tolerance allows it; a missing claim and a
workload scaled to 0 fail by name as well.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tests.integration.test_cluster_state import start_app
from tests.integration.test_longhorn_volume_backup import _wait, setup_backups

pytestmark = pytest.mark.integration

PLAYBOOK = 'homelab.longhorn_dr.verify_cluster'
JUDGE = 'homelab.longhorn_dr.verify_restore : Judge the restore'
FAIL_TASK = 'homelab.longhorn_dr.verify_restore : Fail for the failed checks'
NS = 'apps'


def backed_up_app(lab, run_playbook, tmp_path):
    """Claim apps/app-data with 1000 rows, a Deployment on it, and a cluster-state export with the row count."""
    volume = setup_backups(lab, run_playbook, claims=('app-data',))['app-data']
    start_app(lab, volume)
    dest = tmp_path / 'cluster-state'
    export = run_playbook('cluster_state.yml', extra_vars={'cluster_state_dest': str(dest)})
    assert export.rc == 0, str(export)
    manifest = json.loads((dest / 'manifest.json').read_text())
    assert [(b['name'], b['stdout']) for b in manifest['baselines']] == [('app-rows', '1000\n')]
    return volume, dest, manifest


def app_pod(lab):
    pods = [p for p in lab.store.list('pods', NS)[0] if (p.get('status') or {}).get('phase') == 'Running'
            and not p['metadata'].get('deletionTimestamp')]
    return pods[0]['metadata']['name'] if len(pods) == 1 else None


def replace_pod(lab):
    """Delete the app's pod, as a restore does; its ReplicaSet starts one with another name."""
    old = app_pod(lab)
    lab.store.delete('pods', NS, old)

    def replaced():
        new = app_pod(lab)
        return new if new and new != old else None
    return _wait(replaced, what='a replacement pod')


def set_rows(lab, volume, rows):
    db = sqlite3.connect(os.path.join(lab.ctx.volume_data_dir(volume), 'app.db'))
    db.execute('delete from t where n >= ?', (rows,))
    db.commit()
    db.close()


def verify(run_playbook, lab, **extra):
    extra_vars = {'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'verify_restore_wait_timeout': 20, **extra}
    check = extra_vars.pop('_check', False)
    result = run_playbook(PLAYBOOK, extra_vars=extra_vars, check=check)
    try:
        return result, result.task_result(JUDGE)['ansible_facts']['verify_restore__result']
    except KeyError:
        raise AssertionError(str(result)) from None


def test_verify_cluster_against_the_baselines(lab, run_playbook, tmp_path):
    volume, dest, manifest = backed_up_app(lab, run_playbook, tmp_path)
    old_pod = manifest['baselines'][0]['pod']
    new_pod = replace_pod(lab)
    assert new_pod != old_pod
    workloads = [{'kind': 'Deployment', 'namespace': NS, 'name': 'app'}]
    report_file = tmp_path / 'verify.json'

    # Passes: the claim is Bound to the volume of the manifest, the volume is fine, the app is ready, and the
    # baseline runs again in the pod that replaced the one it was recorded in.
    mark = lab.audit_mark()
    result, verdict = verify(run_playbook, lab, verify_restore_cluster_state_dir=str(dest), verify_restore_workloads=workloads,
                             verify_restore_report_file=str(report_file),
                             verify_restore_checks=[{'name': 'payload-lines', 'namespace': NS, 'label_selector': 'app=app',
                                                     'command': 'sh -c "wc -l < /data/data.txt"', 'expect_number': 1000}])
    assert result.rc == 0, str(result)
    assert lab.writes_since(mark) == [], 'verification wrote to the cluster'
    assert verdict['passed'] is True and verdict['counts'] == {'ok': 5, 'warn': 0, 'fail': 0}, verdict['report']
    assert verdict['pvcs'][0]['volume'] == volume and verdict['pvcs'][0]['status'] == 'OK'
    assert verdict['volumes'][0]['name'] == volume and verdict['volumes'][0]['status'] == 'OK'
    rows = next(c for c in verdict['checks'] if c['name'] == 'app-rows')
    assert (rows['source'], rows['pod'], rows['actual'], rows['status']) == ('baseline', new_pod, '1000', 'OK'), rows
    assert json.loads(report_file.read_text()) == verdict
    assert result.output['global_custom_stats']['verify_restore']['passed'] is True
    assert any(line.startswith('OK   baseline app-rows') for line in verdict['report'])

    # Check mode runs the same reads and read-only commands, and writes nothing.
    mark = lab.audit_mark()
    checked, verdict = verify(run_playbook, lab, verify_restore_cluster_state_dir=str(dest), _check=True)
    assert checked.rc == 0 and verdict['passed'], str(checked)
    assert lab.writes_since(mark) == []

    # 500 rows lost: the baseline fails by name, with both numbers.
    set_rows(lab, volume, 500)
    failed, verdict = verify(run_playbook, lab, verify_restore_cluster_state_dir=str(dest), verify_restore_workloads=workloads)
    assert failed.rc != 0, str(failed)
    assert verdict['passed'] is False
    rows = next(c for c in verdict['checks'] if c['name'] == 'app-rows')
    assert rows['status'] == 'FAIL' and rows['reason'].startswith('500, expected 1000'), rows
    message = failed.task_result(FAIL_TASK)['msg']
    assert 'app-rows' in message and '1 failure(s)' in message, message

    # Within a 60 % tolerance it passes, with the difference shown.
    loose, verdict = verify(run_playbook, lab, verify_restore_cluster_state_dir=str(dest), verify_restore_tolerance='60%')
    assert loose.rc == 0 and 'within (tolerance 60%)' in verdict['checks'][0]['reason'], str(loose)

    # A claim that is not there, a volume that is not the expected one, a workload at 0: each named; with
    # verify_restore_fail=false the play reports them without failing.
    lab.store.modify('deployments', NS, 'app', lambda obj: obj['spec'].update(replicas=0))
    missing, verdict = verify(run_playbook, lab, verify_restore_use_baselines=False, verify_restore_cluster_state_dir='',
                              verify_restore_wait_timeout=0, verify_restore_workloads=workloads, verify_restore_fail=False,
                              verify_restore_expected_pvcs=[{'namespace': NS, 'name': 'gone'},
                                                            {'namespace': NS, 'name': 'app-data', 'volume': 'pvc-other'}])
    assert missing.rc == 0 and verdict['passed'] is False, str(missing)
    assert missing.output['global_custom_stats']['verify_restore']['passed'] is False
    reasons = [line for line in verdict['report'] if line.startswith('FAIL')]
    assert 'FAIL PVC apps/gone: PVC apps/gone does not exist' in reasons, reasons
    assert any(f'bound to volume {volume}, which is neither pvc-other' in line for line in reasons), reasons
    assert any(line.startswith('FAIL Deployment apps/app') and 'scaled to 0' in line for line in reasons), reasons

    for run in (result, checked, failed, loose, missing):
        assert not run.mentions(lab.secret_key)
