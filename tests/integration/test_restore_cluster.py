# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""restore_cluster on the lab after a wipe: plan only, check mode, the restore, and a re-run that changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import volume_file as _data
from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration

NS = 'longhorn-system'
CLAIMS = ('app-data', 'db-data', 'logs-data')
ROLE = 'homelab.longhorn_dr.restore_cluster : '


def _without_ages(plan):
    plan = json.loads(json.dumps(plan))
    for entry in plan['entries']:
        entry['backup'].pop('age_seconds')
    return plan


def _backed_up_and_wiped(lab, run_playbook, system_backup=False):
    volumes = setup_backups(lab, run_playbook, claims=CLAIMS)
    backup = run_playbook('longhorn_volume_backup.yml')
    assert backup.rc == 0, str(backup)
    if system_backup:
        made = run_playbook('longhorn_system_backup.yml', extra_vars={'system_backup_name': 'after-backups', 'system_backup_policy': 'disabled'})
        assert made.rc == 0, str(made)
    lab.wipe_cluster()
    return volumes


def test_plan_check_restore_and_rerun(lab, run_playbook, tmp_path):
    volumes = _backed_up_and_wiped(lab, run_playbook)
    plan_file = tmp_path / 'plan.json'

    mark = lab.audit_mark()
    planned = run_playbook('restore_cluster_lab.yml', extra_vars={'restore_cluster_plan_only': True, 'restore_cluster_plan_file': str(plan_file)})
    assert planned.rc == 0, str(planned)
    assert lab.writes_since(mark) == [], 'the plan wrote to the cluster'
    plan = json.loads(plan_file.read_text())
    assert plan['ok'] is True and plan['method'] == 'volumes', plan
    assert [(e['pvc_namespace'], e['pvc_name'], e['volume'], e['action']) for e in plan['entries']] == \
        [('apps', claim, volumes[claim], 'restore') for claim in sorted(CLAIMS)]
    assert all(e['backup']['name'].startswith('backup-') and e['backup']['size'] > 0 for e in plan['entries'])
    shown = '\n'.join(planned.task_result(ROLE + 'Show the plan')['msg'])
    assert 'apps/db-data: volume' in shown and '-> restore' in shown, shown

    mark = lab.audit_mark()
    checked = run_playbook('restore_cluster_lab.yml', check=True)
    assert checked.rc == 0, str(checked)
    assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
    assert _without_ages(checked.task_result(ROLE + 'Build the plan')['ansible_facts']['restore_cluster_plan']) == _without_ages(plan)

    restored = run_playbook('restore_cluster_lab.yml', extra_vars={'restore_cluster_method': 'volumes'})
    assert restored.rc == 0, str(restored)
    report = restored.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']
    assert report['failures'] == [] and report['rto_seconds'] > 0, report
    assert {v['pvc']: (v['volume_state'], v['claim_state']) for v in report['volumes']} == \
        {f'apps/{claim}': ('Restored', 'Created') for claim in CLAIMS}
    assert all(v['rpo_seconds'] >= 0 for v in report['volumes'])
    for claim, volume in volumes.items():
        pvc = lab.store.get('persistentvolumeclaims', 'apps', claim)
        assert pvc['status']['phase'] == 'Bound' and pvc['spec']['volumeName'] == volume
        assert _data(lab, volume) == f'{claim} payload\n' * 1000

    rerun = run_playbook('restore_cluster_lab.yml', extra_vars={'restore_cluster_method': 'volumes'})
    assert rerun.rc == 0, str(rerun)
    assert rerun.changed() == 0, [t['task']['name'] for t in rerun.tasks() if t['hosts']['localhost'].get('changed')]
    again = rerun.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']
    assert {v['volume_state'] for v in again['volumes']} == {'AlreadyRestored'} and {v['claim_state'] for v in again['volumes']} == {'Bound'}
    assert not rerun.mentions(lab.secret_key)
