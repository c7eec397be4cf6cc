# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster_state role and longhorn_cluster_state against the lab: CHECK, apply, upload, max_age, no secret anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import boto3
import pytest
import yaml
from botocore.config import Config

from tests.integration.test_longhorn_volume_backup import _wait, setup_backups

pytestmark = pytest.mark.integration

EXPORT_FILES = ['backuptargets.yaml', 'persistentvolumeclaims.yaml', 'persistentvolumes.yaml', 'recurringjobs.yaml',
                'storageclasses.yaml', 'volumes.yaml']
CONTRACT_KEYS = {'format', 'exported_at', 'longhorn_version', 'kubernetes_version', 'files', 'volumes', 'baselines'}
PLAYBOOK = 'homelab.longhorn_dr.backup_cluster_state'
EXPORT_TASK = 'homelab.longhorn_dr.cluster_state : Export the cluster state'
VOLUME_KEYS = {'volume', 'pv_name', 'pvc_namespace', 'pvc_name', 'size', 'access_modes', 'storage_class', 'number_of_replicas', 'last_backup'}


def _s3(lab):
    return boto3.client('s3', endpoint_url=lab.s3_endpoint, aws_access_key_id=lab.access_key, aws_secret_access_key=lab.secret_key,
                        region_name=lab.region, config=Config(s3={'addressing_style': 'path'}))


def _keys(s3, bucket, prefix=''):
    return sorted(o['Key'] for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix)
                  for o in page.get('Contents', []))


def start_app(lab, volume, claim='app-data', namespace='apps', rows=1000):
    """A SQLite database with ``rows`` rows on the claim's volume and a Deployment mounting the claim at /data."""
    db = sqlite3.connect(os.path.join(lab.ctx.volume_data_dir(volume), 'app.db'))
    db.execute('create table t (n int)')
    db.executemany('insert into t values (?)', [(i,) for i in range(rows)])
    db.commit()
    db.close()
    lab.store.create('deployments', {
        'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'app', 'namespace': namespace},
        'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': 'app'}},
                 'template': {'metadata': {'labels': {'app': 'app'}},
                              'spec': {'containers': [{'name': 'app', 'image': 'python:3.11-slim',
                                                       'volumeMounts': [{'name': 'data', 'mountPath': '/data'}]}],
                                       'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': claim}}]}}}})
    _wait(lambda: [p for p in lab.store.list('pods', namespace)[0] if (p.get('status') or {}).get('phase') == 'Running'],
          what='the app pod to run')


def test_check_apply_upload_and_max_age(lab, run_playbook, tmp_path):
    volumes = setup_backups(lab, run_playbook, claims=('app-data', 'db-data'))
    backed_up = run_playbook('longhorn_volume_backup.yml', extra_vars={'backup_volumes': [volumes['app-data']]})
    assert backed_up.rc == 0, str(backed_up)
    backup = backed_up.task_result('Back up the volumes')['backups'][0]
    start_app(lab, volumes['app-data'])
    dest = tmp_path / 'export'
    s3 = _s3(lab)
    keys_before = _keys(s3, lab.bucket)

    # CHECK: the baseline runs (it only reads), nothing is written anywhere.
    mark = lab.audit_mark()
    check = run_playbook('cluster_state.yml', check=True, diff=True, extra_vars={'cluster_state_dest': str(dest)})
    assert check.rc == 0, str(check)
    task = check.task_result(EXPORT_TASK)
    assert task['changed'] is True, str(check)
    assert not dest.exists(), 'check mode wrote the export'
    assert lab.writes_since(mark) == [], 'check mode wrote to the cluster'
    assert _keys(s3, lab.bucket) == keys_before, 'check mode uploaded'
    assert [d['after_header'] for d in task['diff']] == [str(dest / n) for n in EXPORT_FILES + ['manifest.json']]
    assert task['uploaded'] and all(k.startswith('cluster-state/') for k in task['uploaded'])
    assert [(b['name'], b['stdout']) for b in task['manifest']['baselines']] == [('app-rows', '1000\n')]

    # Apply: files, manifest, upload; the API is only read.
    mark = lab.audit_mark()
    applied = run_playbook('cluster_state.yml', verbosity=3, extra_vars={'cluster_state_dest': str(dest)})
    assert applied.rc == 0, str(applied)
    assert lab.writes_since(mark) == []
    task = applied.task_result(EXPORT_TASK)
    assert task['changed'] is True and task['unchanged_reason'] == '', str(applied)
    manifest = json.loads((dest / 'manifest.json').read_text())
    assert manifest == task['manifest']
    assert set(manifest) == CONTRACT_KEYS
    assert manifest['format'] == 'homelab.longhorn_dr/cluster-state/v1'
    assert manifest['longhorn_version'] == 'v1.10.2'
    assert manifest['kubernetes_version'].startswith('v1.')
    assert sorted(manifest['files']) == EXPORT_FILES
    for name, info in manifest['files'].items():
        data = (dest / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == info['sha256'], name
        document = yaml.safe_load(data)
        assert document['kind'] == 'List' and len(document['items']) == info['objects'], name
    assert {f['path'] for f in task['files']} == {str(dest / n) for n in EXPORT_FILES}

    by_volume = {v['volume']: v for v in manifest['volumes']}
    assert sorted(by_volume) == sorted(volumes.values())
    app = by_volume[volumes['app-data']]
    assert set(app) == VOLUME_KEYS
    assert (app['pv_name'], app['pvc_namespace'], app['pvc_name']) == (volumes['app-data'], 'apps', 'app-data')
    assert app['size'] == 64 * 1024 * 1024 and app['access_modes'] == ['ReadWriteOnce']
    assert app['storage_class'] == 'longhorn' and app['number_of_replicas'] == 3
    assert app['last_backup']['name'] == backup['backup'] and app['last_backup']['url'] == backup['url']
    assert app['last_backup']['created_at']
    assert by_volume[volumes['db-data']]['last_backup'] is None

    [baseline] = manifest['baselines']
    assert (baseline['name'], baseline['stdout'], baseline['rc']) == ('app-rows', '1000\n', 0)
    assert baseline['pod'].startswith('app-') and baseline['namespace'] == 'apps' and baseline['label_selector'] == 'app=app'

    pvcs = yaml.safe_load((dest / 'persistentvolumeclaims.yaml').read_text())['items']
    assert [(p['metadata']['namespace'], p['metadata']['name']) for p in pvcs] == [('apps', 'app-data'), ('apps', 'db-data')]
    assert all('managedFields' not in p['metadata'] and 'uid' not in p['metadata'] for p in pvcs)
    targets = yaml.safe_load((dest / 'backuptargets.yaml').read_text())['items']
    assert targets[0]['spec']['credentialSecret'] == 'minio-credentials' and 'syncRequestedAt' not in targets[0]['spec']

    uploaded = task['uploaded']
    assert uploaded[-1].endswith('/manifest.json') and len(uploaded) == len(EXPORT_FILES) + 1
    assert all(k.startswith('cluster-state/') and not k.startswith('backupstore/') for k in uploaded)
    assert set(_keys(s3, lab.bucket, 'cluster-state/')) == set(uploaded)
    remote = json.loads(s3.get_object(Bucket=lab.bucket, Key=uploaded[-1])['Body'].read())
    assert remote == manifest
    for key in uploaded[:-1]:
        assert s3.get_object(Bucket=lab.bucket, Key=key)['Body'].read() == (dest / os.path.basename(key)).read_bytes()

    # The secret key shows up nowhere: not at -vvv, not in the export.
    for run in (check, applied):
        assert not run.mentions(lab.secret_key)
    for path in dest.iterdir():
        assert lab.secret_key not in path.read_text()

    # max_age: identical content, young enough -> nothing written, nothing uploaded, no change.
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dest.iterdir()}
    keys_before = _keys(s3, lab.bucket)
    again = run_playbook('cluster_state.yml', extra_vars={'cluster_state_dest': str(dest), 'cluster_state_max_age': '1h'})
    assert again.rc == 0, str(again)
    task = again.task_result(EXPORT_TASK)
    assert task['changed'] is False and task['uploaded'] == [], str(again)
    assert 'younger than max_age' in task['unchanged_reason']
    assert task['manifest'] == manifest
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in dest.iterdir()} == before
    assert _keys(s3, lab.bucket) == keys_before


def test_collection_playbook_with_awx_credentials_failing_baseline_and_backupstore_prefix(lab, run_playbook, tmp_path):
    lab.store.create('namespaces', {'metadata': {'name': 'apps'}})
    lab.store.create('persistentvolumeclaims', {
        'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'app-data', 'namespace': 'apps'},
        'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn', 'resources': {'requests': {'storage': '64Mi'}}}})
    volume = _wait(lambda: lab.store.get('persistentvolumeclaims', 'apps', 'app-data')['spec'].get('volumeName'), what='the claim to bind')
    start_app(lab, volume, rows=7)
    dest = tmp_path / 'export'
    # As AWX injects an S3 credential: environment variables only.
    env = {'AWS_ACCESS_KEY_ID': lab.access_key, 'AWS_SECRET_ACCESS_KEY': lab.secret_key, 'AWS_ENDPOINT_URL': lab.s3_endpoint}
    base = {'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'cluster_state_dest': str(dest), 'cluster_state_upload': True,
            'cluster_state_bucket': lab.bucket}
    count = {'name': 'app-rows', 'namespace': 'apps', 'label_selector': 'app=app',
             'command': "python3 -c \"import sqlite3; print(sqlite3.connect('/data/app.db').execute('select count(*) from t').fetchone()[0])\""}
    pod = lab.store.list('pods', 'apps')[0][0]['metadata']['name']
    broken = {'name': 'orders-count', 'namespace': 'apps', 'pod': pod, 'container': 'app', 'command': 'sh -c "echo no such table: orders >&2; exit 3"'}

    failing = run_playbook(PLAYBOOK, env=env, extra_vars={**base, 'cluster_state_baselines': [count, broken]})
    assert failing.rc != 0, str(failing)
    failed = failing.task_result('homelab.longhorn_dr.cluster_state : Fail for each baseline command that did not succeed')
    [message] = [r['msg'] for r in failed['results'] if r.get('failed')]
    assert f'Baseline orders-count failed in pod apps/{pod} (rc=3)' in message and 'no such table: orders' in message, message
    assert not dest.exists()

    keys_before = _keys(_s3(lab), lab.bucket)
    refused = run_playbook(PLAYBOOK, env=env, extra_vars={**base, 'cluster_state_upload_prefix': 'backupstore/cluster-state/'})
    assert refused.rc != 0, str(refused)
    assert "cluster_state_upload_prefix: 'backupstore/cluster-state/' lies inside the backupstore 'backupstore/'" in refused.task_result(
        'homelab.longhorn_dr.cluster_state : Check that the upload prefix is outside the backupstore')['msg']
    assert not dest.exists() and _keys(_s3(lab), lab.bucket) == keys_before

    applied = run_playbook(PLAYBOOK, env=env, extra_vars={**base, 'cluster_state_baselines': [count]})
    assert applied.rc == 0, str(applied)
    task = applied.task_result(EXPORT_TASK)
    manifest = json.loads((dest / 'manifest.json').read_text())
    assert task['changed'] is True and task['manifest'] == manifest
    [entry] = manifest['volumes']
    assert (entry['volume'], entry['pvc_namespace'], entry['pvc_name'], entry['last_backup']) == (volume, 'apps', 'app-data', None)
    assert [(b['name'], b['stdout'], b['rc']) for b in manifest['baselines']] == [('app-rows', '7\n', 0)]
    assert sorted(_keys(_s3(lab), lab.bucket, 'cluster-state/')) == sorted(task['uploaded'])
    assert len(task['uploaded']) == len(EXPORT_FILES) + 1
