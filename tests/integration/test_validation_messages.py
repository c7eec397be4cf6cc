# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 10, finding 6: every refusal of a role (and of a module run for real) names the variable, the value
given and what would be accepted, and nothing is written.

All cases run in one ansible-playbook process: one play per case, each catching its refusal in a rescue, so the
suite stays fast. The playbook is generated from the table below.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

MISSING_KUBECONFIG = '/nonexistent/longhorn-dr/kubeconfig'
MANIFEST_FORMAT = 'homelab.longhorn_dr/cluster-state/v1'
NOT_REFUSED = 'NOT REFUSED'

# (case, role or module FQCN, variables or module options, fragments the message must contain, fragments it must not)
ROLE_CASES = [
    # recurring_jobs
    ('rj-retain', 'recurring_jobs', {'recurring_jobs_list': [{'name': 'daily', 'task': 'backup', 'cron': '0 2 * * *', 'retain': 101}]},
     ['recurring_jobs_list[0] (daily)', 'retain 101', '0..100'], ['cron']),
    ('rj-cron', 'recurring_jobs', {'recurring_jobs_list': [{'name': 'daily', 'task': 'backup', 'cron': '0 2 * *', 'retain': 3}]},
     ['recurring_jobs_list[0] (daily)', "cron '0 2 * *'", '5-field cron expression', '@daily'], ['retain']),
    ('rj-task', 'recurring_jobs', {'recurring_jobs_list': [{'name': 'daily', 'task': 'backupp', 'cron': '@daily'}]},
     ['task', 'backupp', 'snapshot-cleanup'], []),
    ('rj-name', 'recurring_jobs', {'recurring_jobs_list': [{'name': 'Daily_Backup', 'task': 'backup', 'cron': '@daily'}]},
     ["name 'Daily_Backup'", '2 to 40 characters', '^[a-z0-9][a-z0-9_.-]+$'], ['cron']),
    ('rj-unique', 'recurring_jobs', {'recurring_jobs_list': [{'name': 'daily', 'task': 'backup', 'cron': '@daily'},
                                                             {'name': 'daily', 'task': 'snapshot', 'cron': '@hourly'}]},
     ["job name 'daily'", 'unique'], []),
    ('rj-system-backup', 'recurring_jobs', {'recurring_jobs_list': [], 'recurring_jobs_system_backup_enabled': True,
                                            'recurring_jobs_system_backup': {'name': 'sb', 'task': 'system-backup', 'cron': '@daily',
                                                                             'retain': 500}},
     ['recurring_jobs_system_backup (sb)', 'retain 500', '0..100'], ['cron']),
    ('rj-kubeconfig', 'recurring_jobs', {'recurring_jobs_kubeconfig': MISSING_KUBECONFIG},
     ['recurring_jobs_kubeconfig: %s does not exist' % MISSING_KUBECONFIG, 'K8S_AUTH_KUBECONFIG'], []),
    ('rj-namespace', 'recurring_jobs', {'recurring_jobs_namespace': 'longhorn'},
     ["recurring_jobs_namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
    # cluster_state
    ('cs-max-age', 'cluster_state', {'cluster_state_max_age': 'soon'},
     ["cluster_state_max_age: 'soon'", 'Go duration'], []),
    ('cs-baseline', 'cluster_state', {'cluster_state_baselines': [{'name': 'rows', 'namespace': 'default', 'command': 'true'}]},
     ['cluster_state_baselines[0]', "'rows'", 'exactly one of pod or label_selector'], []),
    ('cs-baseline-namespace', 'cluster_state',
     {'cluster_state_baselines': [{'name': 'rows', 'namespace': 'shop', 'pod': 'db-0', 'command': 'true'}]},
     ["cluster_state_baselines (rows): unknown namespace 'shop'", 'known:', 'longhorn-system'], []),
    ('cs-namespace', 'cluster_state', {'cluster_state_namespace': 'longhorn'},
     ["cluster_state_namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
    ('cs-upload-prefix', 'cluster_state',
     {'cluster_state_upload': True, 'cluster_state_s3_endpoint': 'http://127.0.0.1:9', 'cluster_state_bucket': 'b',
      'cluster_state_access_key': 'example-access', 'cluster_state_secret_key': 'example-secret',
      'cluster_state_prefix': 'dr', 'cluster_state_upload_prefix': 'dr/backupstore/state'},
     ["cluster_state_upload_prefix: 'dr/backupstore/state'", "'dr/backupstore/'", 'cluster-state/'], []),
    ('cs-upload-bucket', 'cluster_state',
     {'cluster_state_upload': True, 'cluster_state_s3_endpoint': 'http://127.0.0.1:9', 'cluster_state_bucket': ''},
     ["cluster_state_bucket (got '')"], []),
    ('cs-kubeconfig', 'cluster_state', {'cluster_state_kubeconfig': MISSING_KUBECONFIG},
     ['cluster_state_kubeconfig: %s does not exist' % MISSING_KUBECONFIG], []),
    # verify_restore
    ('vr-source', 'verify_restore', {'verify_restore_cluster_state_source': 's3'},
     ['verify_restore_cluster_state_source', 's3', 'dir, bucket'], []),
    ('vr-bucket', 'verify_restore', {'verify_restore_cluster_state_source': 'bucket', 'verify_restore_bucket': '',
                                     'verify_restore_endpoint_url': ''},
     ["verify_restore_bucket must name the bucket (got '')", "verify_restore_endpoint_url", "(got '')"], []),
    ('vr-workload', 'verify_restore', {'verify_restore_workloads': [{'kind': 'Job', 'namespace': 'default', 'name': 'x'}]},
     ['verify_restore_workloads[0]', "'Job'", 'Deployment, StatefulSet, DaemonSet'], []),
    ('vr-claims', 'verify_restore', {'verify_restore_expected_pvcs': [{'name': 'data'}]},
     ['verify_restore_expected_pvcs', "'name': 'data'", 'namespace and name'], []),
    ('vr-tolerance', 'verify_restore', {'verify_restore_tolerance': '5 percent',
                                        'verify_restore_expected_pvcs': [{'namespace': 'default', 'name': 'data'}]},
     ["verify_restore_tolerance '5 percent'", 'percentage such as 5%'], []),
    ('vr-check', 'verify_restore', {'verify_restore_checks': [{'name': 'rows', 'namespace': 'default', 'pod': 'db-0', 'command': 'true'}]},
     ['verify_restore_checks[0] (rows)', 'expect (text) or expect_number'], []),
    ('vr-namespaces', 'verify_restore', {'verify_restore_cluster_state_dir': '{{ export_dir }}', 'verify_restore_namespaces': ['shop']},
     ["verify_restore_namespaces: unknown namespace 'shop'", 'known: apps'], []),
    ('vr-namespace', 'verify_restore', {'verify_restore_namespace': 'longhorn',
                                        'verify_restore_expected_pvcs': [{'namespace': 'default', 'name': 'data'}]},
     ["verify_restore_namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
    ('vr-kubeconfig', 'verify_restore', {'verify_restore_kubeconfig': MISSING_KUBECONFIG,
                                         'verify_restore_expected_pvcs': [{'namespace': 'default', 'name': 'data'}]},
     ['verify_restore_kubeconfig: %s does not exist' % MISSING_KUBECONFIG], []),
    # restore_app
    ('ra-namespace-empty', 'restore_app', {'restore_app_namespace': ''},
     ["restore_app_namespace must name the app's namespace (got '')"], []),
    ('ra-pvcs-twice', 'restore_app', {'restore_app_pvcs': ['data', 'data']},
     ['restore_app_pvcs names a claim more than once', "['data', 'data']"], []),
    ('ra-workload', 'restore_app', {'restore_app_workloads': [{'kind': 'DaemonSet', 'name': 'agent'}]},
     ['restore_app_workloads[0]', "'DaemonSet'", 'Deployment or StatefulSet'], []),
    ('ra-backup', 'restore_app', {'restore_app_pvcs': ['data', 'logs'], 'restore_app_backup': 'backup-1a2b'},
     ["restore_app_backup 'backup-1a2b'", "['data', 'logs']", 'exactly one claim'], []),
    ('ra-namespace', 'restore_app', {'restore_app_namespace': 'shop'},
     ["restore_app_namespace: unknown namespace 'shop'", 'known:', 'longhorn-system'], []),
    ('ra-longhorn-namespace', 'restore_app', {'restore_app_longhorn_namespace': 'longhorn'},
     ["restore_app_longhorn_namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
    ('ra-export', 'restore_app', {'restore_app_cluster_state_dir': '{{ export_dir }}'},
     ["restore_app_namespace: unknown namespace 'default' in the cluster-state export", 'known: apps'], []),
    ('ra-kubeconfig', 'restore_app', {'restore_app_kubeconfig': MISSING_KUBECONFIG},
     ['restore_app_kubeconfig: %s does not exist' % MISSING_KUBECONFIG], []),
    # restore_cluster, backup_gate, backup_target: which of several variables is empty or wrong, by name alone
    ('rc-source', 'restore_cluster', {'restore_cluster_cluster_state_source': 's3'},
     ['restore_cluster_cluster_state_source', 'dir, bucket', 's3'], ['restore_cluster_cluster_state_prefix']),
    ('rc-credentials', 'restore_cluster', {'restore_cluster_access_key': '', 'restore_cluster_secret_key': ''},
     ['restore_cluster_access_key, restore_cluster_secret_key are empty:'], []),
    ('rc-numbers', 'restore_cluster', {'restore_cluster_sync_timeout': 0},
     ["restore_cluster_sync_timeout is '0'", 'at least 1'], ['restore_cluster_concurrency', 'restore_cluster_wait_timeout']),
    ('bg-s3', 'backup_gate', {'backup_gate_access_key': ''},
     ['backup_gate_access_key must not be empty'], ['backup_gate_endpoint_url', 'backup_gate_secret_key']),
    ('bt-credentials', 'backup_target', {'backup_target_secret_key': ''},
     ['backup_target_secret_key must not be empty'], ['backup_target_access_key', 'backup_target_credential_secret']),
]

MODULE_CASES = [
    ('vb-kubeconfig', 'longhorn_volume_backup', {'kubeconfig': MISSING_KUBECONFIG},
     ["kubeconfig: the file 'kubeconfig' in /nonexistent/longhorn-dr does not exist"], []),
    ('vb-context', 'longhorn_volume_backup', {'context': 'nowhere'},
     ["context: unknown context 'nowhere' in the kubeconfig", 'known:'], []),
    ('vb-namespace', 'longhorn_volume_backup', {'namespace': 'longhorn'},
     ["namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
    ('vb-max-age', 'longhorn_volume_backup', {'max_age': 'soon'},
     ["invalid max_age 'soon'", 'Go duration'], []),
    ('sb-namespace', 'longhorn_system_backup', {'namespace': 'longhorn', 'name': 'nightly'},
     ["namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
    ('cs-module-namespace', 'longhorn_cluster_state', {'namespace': 'longhorn', 'dest': '{{ export_target }}'},
     ["namespace: unknown namespace 'longhorn'", 'known:', 'longhorn-system'], []),
]

# What a role needs besides the variable under test, so that only that variable is wrong.
ROLE_BASE = {
    'recurring_jobs': {'recurring_jobs_kubeconfig': '{{ lab_kubeconfig }}'},
    'cluster_state': {'cluster_state_kubeconfig': '{{ lab_kubeconfig }}', 'cluster_state_dest': '{{ export_target }}'},
    'verify_restore': {'verify_restore_kubeconfig': '{{ lab_kubeconfig }}'},
    'restore_app': {'restore_app_kubeconfig': '{{ lab_kubeconfig }}', 'restore_app_namespace': 'default', 'restore_app_pvcs': ['data'],
                    'restore_app_confirm_delete': False},
    'restore_cluster': {'restore_cluster_kubeconfig': '{{ lab_kubeconfig }}', 'restore_cluster_bucket': '{{ lab_bucket }}',
                        'restore_cluster_endpoint_url': '{{ lab_s3_endpoint }}', 'restore_cluster_access_key': '{{ lab_access_key }}',
                        'restore_cluster_secret_key': '{{ lab_secret_key }}',
                        'restore_cluster_cluster_state_dir': '{{ export_dir }}'},
    'backup_gate': {'backup_gate_kubeconfig': '{{ lab_kubeconfig }}', 'backup_gate_endpoint_url': '{{ lab_s3_endpoint }}',
                    'backup_gate_access_key': '{{ lab_access_key }}', 'backup_gate_secret_key': '{{ lab_secret_key }}'},
    'backup_target': {'backup_target_kubeconfig': '{{ lab_kubeconfig }}', 'backup_target_url': 's3://b@us-east-1/',
                      'backup_target_access_key': '{{ lab_access_key }}', 'backup_target_secret_key': '{{ lab_secret_key }}'},
}


def _case_play(case, action, options, module):
    if module:
        task = {'name': 'Run the module', 'homelab.longhorn_dr.%s' % action: dict({'kubeconfig': '{{ lab_kubeconfig }}'}, **options)}
        play_vars = {}
    else:
        task = {'name': 'Run the role', 'ansible.builtin.include_role': {'name': 'homelab.longhorn_dr.%s' % action}}
        play_vars = dict(ROLE_BASE[action], **options)
    message = ("{{ ([ansible_failed_result.msg | default('')] + (ansible_failed_result.results | default([])"
               " | selectattr('failed', 'defined') | selectattr('failed') | map(attribute='msg') | list)) | join(' | ') }}")
    return {
        'name': 'Case %s' % case, 'hosts': 'localhost', 'gather_facts': False, 'vars': play_vars,
        'tasks': [{'name': 'Try case %s' % case, 'block': [
            task,
            {'name': 'Record that it was not refused', 'ansible.builtin.set_fact': {
                'refusals': "{{ refusals | default({}) | combine({'%s': '%s'}) }}" % (case, NOT_REFUSED)}},
        ], 'rescue': [
            {'name': 'Record the refusal', 'ansible.builtin.set_fact': {
                'refusals': "{{ refusals | default({}) | combine({'%s': __message}) }}" % case},
             'vars': {'__message': message}},
        ]}],
    }


def test_each_refusal_names_the_variable_the_value_and_what_is_accepted(lab, run_playbook, tmp_path):
    export_dir = tmp_path / 'export'
    export_dir.mkdir()
    (export_dir / 'manifest.json').write_text(json.dumps({
        'format': MANIFEST_FORMAT, 'exported_at': '2026-12-01T00:00:00Z', 'files': {},
        'volumes': [{'volume': 'pvc-1', 'pvc_namespace': 'apps', 'pvc_name': 'data'}], 'baselines': []}))
    export_target = tmp_path / 'not-written'
    plays = [_case_play(case, action, options, False) for case, action, options, _want, _refuse in ROLE_CASES]
    plays += [_case_play(case, action, options, True) for case, action, options, _want, _refuse in MODULE_CASES]
    plays.append({'name': 'Report', 'hosts': 'localhost', 'gather_facts': False,
                  'tasks': [{'name': 'Show the refusals', 'ansible.builtin.debug': {'var': 'refusals'}}]})
    playbook = tmp_path / 'validation_messages.yml'
    playbook.write_text(json.dumps(plays, indent=1))

    mark = lab.audit_mark()
    run = run_playbook(playbook, extra_vars={'export_dir': str(export_dir), 'export_target': str(export_target)}, verbosity=0)
    assert run.rc == 0, run
    refusals = run.task_result('Show the refusals')['refusals']

    problems = []
    for case, _action, _options, wanted, refused in ROLE_CASES + MODULE_CASES:
        message = refusals.get(case, '(no result)')
        missing = [fragment for fragment in wanted if fragment not in message]
        blamed = [fragment for fragment in refused if fragment in message]
        if message == NOT_REFUSED or missing or blamed:
            problems.append('%s: %r lacks %s%s' % (case, message, missing, (' and blames %s' % blamed) if blamed else ''))
    assert problems == [], '\n'.join(problems)
    assert lab.writes_since(mark) == []
    assert not export_target.exists()
