# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kubernetes.core's k8s (wait), k8s_scale and k8s_exec against the lab's workloads and Longhorn volumes."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.integration


def test_deployment_statefulset_scale_and_exec(run_playbook, lab):
    result = run_playbook('lab_workloads.yml')
    assert result.rc == 0, result

    deployment = result.task_result('Create the Deployment and wait for it')
    assert deployment['result']['status']['availableReplicas'] == 1, result
    assert result.task_result('Count the rows')['stdout'] == '1000\n', result
    failing = result.task_result('A failing command reports its exit code')
    assert (failing['rc'], failing['stderr']) == (3, 'oops\n'), result

    scaled_down = result.task_result('Scale to zero')
    assert scaled_down['changed'] is True and scaled_down['result']['spec']['replicas'] == 0, result
    assert result.task_result('List the pods at zero')['resources'] == [], result
    assert result.task_result('Scale back to one')['result']['status']['readyReplicas'] == 1, result
    old_pod = result.task_result('Find the pod')['resources'][0]['metadata']['name']
    new_pod = result.task_result('Find the new pod')['resources'][0]['metadata']['name']
    assert new_pod != old_pod
    # The data lives on the Longhorn volume, not in the pod.
    assert result.task_result('Count the rows in the new pod')['stdout'] == '1000\n', result

    statefulset = result.task_result('Create a StatefulSet with a claim template and wait for it')['result']
    assert statefulset['status']['readyReplicas'] == 2, result
    claims = result.task_result("Read the StatefulSet's claims")['resources']
    assert sorted(c['metadata']['name'] for c in claims) == ['pgdata-db-0', 'pgdata-db-1']
    assert {c['status']['phase'] for c in claims} == {'Bound'}
    assert {c['spec']['storageClassName'] for c in claims} == {'longhorn'}, 'the default StorageClass'

    # The claim's data is the Longhorn volume's directory in the lab state.
    volume = lab.store.get('persistentvolumeclaims', 'workloads', 'app-data')['spec']['volumeName']
    assert os.path.getsize(lab.ctx.volume_data_dir(volume) + '/app.db') > 0
