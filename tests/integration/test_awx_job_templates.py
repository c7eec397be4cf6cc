# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 5, AWX: the job templates of extensions/awx run as AWX would run them, against the lab.

No AWX here, so the test does what AWX does at job start: it renders the S3 credential type's injectors (in a
Jinja sandbox, every extra var a string), takes the Kubernetes connection only from the K8S_AUTH_* variables
AWX's bearer token credential injects (the harness points KUBECONFIG nowhere), passes the template's extra vars
and the survey defaults as strings, writes the inventory of job_templates.yml and runs the project's wrapper
playbook.
"""

from __future__ import annotations

import base64
import pathlib

import pytest
import yaml

from tests.integration.test_longhorn_volume_backup import setup_backups
from tests.unit.test_awx_extension import AWX, PROJECT, _load, _render

pytestmark = pytest.mark.integration


def _job(lab, tmp_path, suffix, answers=None):
    """(playbook, env, extra vars, inventory) for the job template whose name ends with suffix."""
    data = _load(AWX / 'job_templates.yml')
    template = next(t for t in data['job_templates'] if t['name'].endswith(suffix))
    env, injected = {}, {}
    if 's3' in template['credentials']:
        rendered = _render(_load(AWX / 'credential_types' / 'longhorn_dr_s3.yml'),
                           {'endpoint_url': lab.s3_endpoint, 'access_key': lab.access_key, 'secret_key': lab.secret_key,
                            'bucket': lab.bucket, 'region': lab.region})
        env.update(rendered['env'])
        injected.update(rendered['extra_vars'])
    if 'kubernetes' in template['credentials']:
        cluster = yaml.safe_load(pathlib.Path(lab.kubeconfig).read_text(encoding='utf-8'))['clusters'][0]['cluster']
        ca_file = tmp_path / 'k8s-ca.pem'
        ca_file.write_bytes(base64.b64decode(cluster['certificate-authority-data']))
        env.update(K8S_AUTH_HOST=cluster['server'], K8S_AUTH_API_KEY=lab.token, K8S_AUTH_VERIFY_SSL='True',
                   K8S_AUTH_SSL_CA_CERT=str(ca_file))
    survey = {item['variable']: item['default'] for item in template.get('survey', []) or []}
    inventory = tmp_path / 'awx-inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': data['inventory']['hosts']}}), encoding='utf-8')
    extra_vars = {**(template.get('extra_vars') or {}), **survey, **(answers or {}), **injected}
    return str(PROJECT / template['playbook']), env, extra_vars, str(inventory)


def test_job_templates_as_awx_runs_them(lab, run_playbook, tmp_path):
    setup_backups(lab, run_playbook, claims=('app-data', 'db-data'))

    def launch(suffix, answers=None):
        playbook, env, extra_vars, inventory = _job(lab, tmp_path, suffix, answers)
        mark = lab.audit_mark()
        result = run_playbook(playbook, extra_vars=extra_vars, env=env, inventory=inventory, verbosity=0)
        return result, lab.writes_since(mark)

    for suffix in ('configure-backups', 'backup-now', 'backup-cluster-state'):
        result, _writes = launch(suffix)
        assert result.rc == 0, str(result)

    # Read-only templates: pass on a protected cluster and write nothing to it.
    for suffix, stats_key in (('check-backups', 'check_backups'), ('preflight', 'backup_gate'), ('verify-cluster', 'verify_restore')):
        result, writes = launch(suffix)
        assert result.rc == 0, str(result)
        assert not writes, f'{suffix} wrote {writes}'
        verdict = result.output.get('global_custom_stats', {}).get(stats_key, {})
        assert verdict.get('ok', verdict.get('passed')) is True, verdict

    # verify-cluster and restore-cluster read the export backup-cluster-state uploaded.
    result, writes = launch('restore-cluster')
    assert result.rc == 0, str(result)
    assert not writes, f'restore-cluster with the survey default (plan only) wrote {writes}'
    assert any(t['task']['name'].endswith('Fetch the newest cluster-state export from the bucket') for t in result.tasks())

    # restore-app: a comma-separated claim list and the default "false" (a string) show the plan and change nothing.
    result, writes = launch('restore-app', {'restore_app_namespace': 'apps', 'restore_app_pvcs': 'app-data,db-data'})
    assert result.rc != 0 and 'Nothing was changed' in result.stdout, str(result)
    assert not writes, writes
