# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The harness itself: a playbook using kubernetes.core against the lab.

An example of the rhythm every integration test follows: check mode, apply,
then apply again to prove idempotency, asserting on task results and on what
the cluster holds afterwards.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_apply_then_idempotent(run_playbook):
    first = run_playbook('smoke.yml')
    assert first.rc == 0, first
    assert first.task_result('Create the namespace')['changed'] is True, first
    assert first.task_result('Create the ConfigMap')['changed'] is True, first
    read = first.task_result('Read the ConfigMap back')
    assert [item['metadata']['name'] for item in read['resources']] == ['smoke-settings']

    second = run_playbook('smoke.yml')
    assert second.rc == 0, second
    assert second.changed() == 0, second


def test_check_mode_predicts_without_writing(run_playbook):
    setup = run_playbook('smoke.yml')
    assert setup.rc == 0, setup

    # Check mode against the namespace that now exists: Kubernetes refuses even
    # a dry-run create in a namespace that does not.
    predicted = run_playbook('smoke.yml', check=True, extra_vars={'smoke_configmap': 'smoke-check'})
    assert predicted.rc == 0, predicted
    assert predicted.task_result('Create the ConfigMap')['changed'] is True, predicted
    assert predicted.task_result('Read the ConfigMap back')['resources'] == [], predicted


def test_playbook_without_lab_kubeconfig_fails(run_playbook, tmp_path):
    # The harness hides ~/.kube/config and $KUBECONFIG: a wrong path must fail
    # instead of silently reaching another cluster.
    result = run_playbook('smoke.yml', extra_vars={'lab_kubeconfig': str(tmp_path / 'missing-kubeconfig')})
    assert result.rc != 0, result
    assert result.failures() == 1, result
