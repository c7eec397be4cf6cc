# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The harness itself: a playbook using kubernetes.core against the lab.

An example of the rhythm integration tests follow: apply, apply again to prove
idempotency, check mode, asserting on task results and on what reached the
Kubernetes API (the lab's audit log), not only on what the playbook reports.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def created_paths(entries):
    return [entry['path'] for entry in entries if entry['verb'] == 'create']


def test_apply_then_idempotent(run_playbook, lab):
    mark = lab.audit_mark()
    first = run_playbook('smoke.yml')
    assert first.rc == 0, first
    assert first.task_result('Create the namespace')['changed'] is True, first
    assert first.task_result('Create the ConfigMap')['changed'] is True, first
    read = first.task_result('Read the ConfigMap back')
    assert [item['metadata']['name'] for item in read['resources']] == ['smoke-settings']
    assert created_paths(lab.writes_since(mark)) == ['/api/v1/namespaces', '/api/v1/namespaces/smoke/configmaps']

    mark = lab.audit_mark()
    second = run_playbook('smoke.yml')
    assert second.rc == 0, second
    assert second.changed() == 0, second
    # kubernetes.core re-sends existing objects as a PATCH and compares the
    # answer; a no-op patch must leave the object (its resourceVersion) alone.
    assert {entry['verb'] for entry in lab.writes_since(mark)} == {'patch'}
    reread = second.task_result('Read the ConfigMap back')['resources'][0]
    assert reread['metadata']['resourceVersion'] == read['resources'][0]['metadata']['resourceVersion']


def test_check_mode_predicts_without_writing(run_playbook, lab):
    setup = run_playbook('smoke.yml')
    assert setup.rc == 0, setup

    # Check mode against the namespace that now exists: Kubernetes refuses even
    # a dry-run create in a namespace that does not.
    mark = lab.audit_mark()
    predicted = run_playbook('smoke.yml', check=True, extra_vars={'smoke_configmap': 'smoke-check'})
    assert predicted.rc == 0, predicted
    assert predicted.task_result('Create the ConfigMap')['changed'] is True, predicted
    assert predicted.task_result('Read the ConfigMap back')['resources'] == [], predicted
    assert lab.writes_since(mark) == []
    # kubernetes.core predicts through a server-side dry run.
    dry_runs = [entry for entry in lab.audit_entries()[mark:] if entry['dryRun']]
    assert created_paths(dry_runs) == ['/api/v1/namespaces/smoke/configmaps']


def test_playbook_without_lab_kubeconfig_fails(run_playbook, lab, tmp_path):
    # The harness hides ~/.kube/config and $KUBECONFIG: a wrong path must fail
    # instead of silently reaching another cluster.
    mark = lab.audit_mark()
    result = run_playbook('smoke.yml', extra_vars={'lab_kubeconfig': str(tmp_path / 'missing-kubeconfig')})
    assert result.rc != 0, result
    assert result.failures() == 1, result
    assert lab.audit_entries()[mark:] == []
