# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""restore_cluster and verify_cluster reading the cluster-state export from the bucket, as an AWX job must.

An app with 1000 rows is backed up and exported with upload; the local export is deleted and the cluster wiped, as
if each step ran in a fresh container. restore_cluster (restore_cluster_cluster_state_source=bucket) and
verify_cluster (verify_restore_cluster_state_source=bucket, credentials from AWS_* as AWX injects them) fetch the
newest complete export, skipping a newer unfinished upload, and the baseline verifies. A damaged file in the bucket
makes the fetch fail naming the file; bad source settings fail before anything is fetched.
"""

from __future__ import annotations

import base64
import os
import shutil

import pytest

from tests.integration.test_cluster_state import _keys, _s3, start_app
from tests.integration.test_longhorn_volume_backup import _wait, setup_backups

pytestmark = pytest.mark.integration

NS = 'apps'
RESTORE = 'homelab.longhorn_dr.restore_cluster : '
VERIFY = 'homelab.longhorn_dr.verify_restore : '
FETCH = 'Fetch the newest cluster-state export from the bucket'
# Newer than any export the test makes, and without its manifest: an upload that did not finish.
UNFINISHED = 'cluster-state/29991231T235959Z/volumes.yaml'


def redeploy_app(lab):
    """The app's Deployment again (the wipe deleted it), on the restored claim; waits for its pod."""
    lab.store.create('deployments', {
        'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'app', 'namespace': NS},
        'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': 'app'}},
                 'template': {'metadata': {'labels': {'app': 'app'}},
                              'spec': {'containers': [{'name': 'app', 'image': 'python:3.11-slim',
                                                       'volumeMounts': [{'name': 'data', 'mountPath': '/data'}]}],
                                       'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': 'app-data'}}]}}}})
    _wait(lambda: [p for p in lab.store.list('pods', NS)[0] if (p.get('status') or {}).get('phase') == 'Running'],
          what='the app pod to run')


def aws_env(lab):
    return {'AWS_ENDPOINT_URL': lab.s3_endpoint, 'AWS_ACCESS_KEY_ID': lab.access_key, 'AWS_SECRET_ACCESS_KEY': lab.secret_key}


def verify(run_playbook, lab, tmp_path, **extra):
    # The directory is not there, as in AWX: with source bucket it must not be read.
    extra_vars = {'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'verify_restore_wait_timeout': 20,
                  'verify_restore_cluster_state_dir': str(tmp_path / 'export'),
                  'verify_restore_cluster_state_source': 'bucket', 'verify_restore_bucket': lab.bucket,
                  'verify_restore_region': lab.region, **extra}
    return run_playbook('homelab.longhorn_dr.verify_cluster', extra_vars=extra_vars, env=aws_env(lab))


def test_restore_and_verify_from_the_bucket(lab, run_playbook, tmp_path):
    volume = setup_backups(lab, run_playbook, claims=('app-data',))['app-data']
    start_app(lab, volume)
    backed_up = run_playbook('longhorn_volume_backup.yml', extra_vars={'backup_volumes': [volume]})
    assert backed_up.rc == 0, str(backed_up)
    local = tmp_path / 'export'
    export = run_playbook('cluster_state.yml', extra_vars={'cluster_state_dest': str(local)})
    assert export.rc == 0, str(export)
    uploaded = export.task_result('homelab.longhorn_dr.cluster_state : Export the cluster state')['uploaded']
    base = uploaded[-1][:-len('manifest.json')]
    s3 = _s3(lab)
    manifest_bytes = s3.get_object(Bucket=lab.bucket, Key=uploaded[-1])['Body'].read()
    s3.put_object(Bucket=lab.bucket, Key=UNFINISHED, Body=b'apiVersion: v1\nkind: List\nitems: []\n')
    # As in AWX: no local export survives, and the cluster is gone; the bucket survives.
    shutil.rmtree(local)
    lab.wipe_cluster()

    # Bad settings fail before anything is fetched or written, naming the value.
    mark = lab.audit_mark()
    bad = run_playbook('restore_cluster_lab.yml', extra_vars={'restore_cluster_cluster_state_source': 'bucket', 'restore_cluster_bucket': ''})
    assert bad.rc != 0 and lab.writes_since(mark) == [], str(bad)
    message = bad.task_result(RESTORE + 'Check the bucket of the cluster-state export')['msg']
    assert 'restore_cluster_cluster_state_source is bucket, so restore_cluster_bucket is needed' in message, message
    unknown = verify(run_playbook, lab, tmp_path, verify_restore_cluster_state_source='s3')
    assert unknown.rc != 0, str(unknown)
    errors = [e for t in unknown.tasks() for e in t['hosts']['localhost'].get('argument_errors') or []]
    assert errors == ['value of verify_restore_cluster_state_source must be one of: dir, bucket, got: s3'], str(unknown)
    assert not any(t['task']['name'] == FETCH for t in unknown.tasks())

    # The restore reads the manifest it fetched from the bucket, the newest complete export, not the unfinished one.
    restored = run_playbook('restore_cluster_lab.yml', extra_vars={'restore_cluster_cluster_state_source': 'bucket',
                                                                   'restore_cluster_method': 'volumes'})
    assert restored.rc == 0, str(restored)
    fetched = restored.task_result(RESTORE + FETCH)
    assert fetched['source'] == f's3://{lab.bucket}/{base}' and fetched['skipped_exports'] == ['29991231T235959Z'], fetched
    assert fetched['fetched'] == uploaded, fetched
    read = restored.task_result(RESTORE + 'Read the cluster-state manifest')
    assert base64.b64decode(read['content']) == manifest_bytes
    claims = restored.task_result(RESTORE + 'Create the PVs and PVCs and wait until they are Bound')
    assert claims['invocation']['module_args']['cluster_state_manifest'] == os.path.join(fetched['dest'], 'manifest.json')
    assert not os.path.exists(fetched['dest']), 'the fetched export is removed at the end'
    report = restored.task_result(RESTORE + 'Build the report')['ansible_facts']['restore_cluster_report']
    assert report['failures'] == [] and [(v['pvc'], v['volume_state']) for v in report['volumes']] == [('apps/app-data', 'Restored')]

    # Verification against the baselines of the bucket's manifest, credentials from the environment as AWX sets them.
    redeploy_app(lab)
    mark = lab.audit_mark()
    checked = verify(run_playbook, lab, tmp_path, verify_restore_workloads=[{'kind': 'Deployment', 'namespace': NS, 'name': 'app'}])
    assert checked.rc == 0, str(checked)
    assert lab.writes_since(mark) == [], 'verification wrote to the cluster'
    verdict = checked.task_result(VERIFY + 'Judge the restore')['ansible_facts']['verify_restore__result']
    assert verdict['passed'] is True and verdict['counts'] == {'ok': 4, 'warn': 0, 'fail': 0}, verdict['report']
    assert [(p['namespace'], p['name'], p['volume'], p['status']) for p in verdict['pvcs']] == [(NS, 'app-data', volume, 'OK')]
    [rows] = [c for c in verdict['checks'] if c['name'] == 'app-rows']
    assert (rows['source'], rows['actual'], rows['status']) == ('baseline', '1000', 'OK'), rows
    assert checked.task_result(VERIFY + FETCH)['source'] == f's3://{lab.bucket}/{base}'
    assert not os.path.exists(checked.task_result(VERIFY + FETCH)['dest'])
    # Check mode fetches too (into a temporary directory only) and verifies the same, writing nothing to the cluster.
    mark = lab.audit_mark()
    dry = run_playbook('homelab.longhorn_dr.verify_cluster', check=True, env=aws_env(lab), extra_vars={
        'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'verify_restore_cluster_state_dir': str(tmp_path / 'export'),
        'verify_restore_cluster_state_source': 'bucket', 'verify_restore_bucket': lab.bucket})
    assert dry.rc == 0 and lab.writes_since(mark) == [], str(dry)
    assert dry.task_result(VERIFY + 'Judge the restore')['ansible_facts']['verify_restore__result']['passed'] is True

    # A damaged file in the bucket: the fetch fails naming it, and nothing is verified against a partial export.
    key = base + 'volumes.yaml'
    s3.put_object(Bucket=lab.bucket, Key=key, Body=s3.get_object(Bucket=lab.bucket, Key=key)['Body'].read() + b'# edited\n')
    damaged = verify(run_playbook, lab, tmp_path)
    assert damaged.rc != 0, str(damaged)
    failure = damaged.task_result(VERIFY + FETCH)
    assert failure['failed'] is True and failure['msg'].startswith(f'volumes.yaml in the export s3://{lab.bucket}/{base} is damaged'), failure
    assert not any(t['task']['name'] == VERIFY + 'Judge the restore' for t in damaged.tasks())
    # A manifest that names a file the bucket does not have: named as missing (here by the restore, before its plan).
    s3.delete_object(Bucket=lab.bucket, Key=base + 'persistentvolumes.yaml')
    missing = run_playbook('restore_cluster_lab.yml', extra_vars={'restore_cluster_cluster_state_source': 'bucket', 'restore_cluster_plan_only': True})
    assert missing.rc != 0, str(missing)
    assert missing.task_result(RESTORE + FETCH)['msg'].startswith(f'persistentvolumes.yaml is missing from the export s3://{lab.bucket}/{base}')
    assert not any(t['task']['name'] == RESTORE + 'Build the plan' for t in missing.tasks())
    assert _keys(s3, lab.bucket, 'cluster-state/') == sorted(set(uploaded) - {base + 'persistentvolumes.yaml'} | {UNFINISHED})

    for run in (bad, unknown, restored, checked, dry, damaged, missing):
        assert not run.mentions(lab.secret_key)
