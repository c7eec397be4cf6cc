# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secret scan (issue 3): no credential value appears in the output of any playbook run.

Every run_playbook call already runs at -vvv and is scanned (tests/integration/conftest.py). Here
every collection playbook under playbooks/ runs against one lab, with the credentials supplied as
users supply them (AWS_* and K8S_AUTH_KUBECONFIG in the environment as AWX sets them, or Vault-style
extra vars), and the scanner itself is shown to find what it must find.
"""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess

import pytest

from tests.integration.conftest import (
    MASK,
    REPO_ROOT,
    TOLERATED_DISCLOSURES,
    base64_forms,
    lab_credentials,
    parse_callback_output,
    scan_for_credentials,
)
from tests.integration.test_longhorn_volume_backup import setup_backups

pytestmark = pytest.mark.integration

# The order a user runs them in, so each finds what the one before made; playbooks not named here
# run after these with the common connection only, and only their output is judged.
ORDER = ('configure_backups', 'backup_now', 'backup_cluster_state', 'check_backups', 'preflight', 'restore_cluster',
         'verify_cluster', 'restore_app')
# Without restore_app_confirm_delete=true restore_app shows its plan and fails, which is all that runs here.
FAIL_BY_DESIGN = ('restore_app',)


def collection_playbooks() -> list[str]:
    """The playbooks under playbooks/ that git knows (not another helper's unfinished file), in ORDER."""
    listed = subprocess.run(['git', 'ls-files', '--', 'playbooks/*.yml', 'playbooks/*.yaml'], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False)
    if listed.returncode == 0:
        names = [pathlib.Path(line).stem for line in listed.stdout.split()]
    else:
        names = [path.stem for path in (REPO_ROOT / 'playbooks').glob('*.y*ml')]
    return sorted(set(names), key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


def playbook_vars(name, lab, tmp_path) -> dict:
    """What each known playbook needs besides the connection; credentials only where users pass them as vars."""
    return {
        # Vault style: the credentials as role variables. backup_target_sync: the setup already pointed the target
        # at the bucket, and longhorn_backup_target waits for a sync after changing it without requesting one, so
        # without it the run waits for the next poll (5 min).
        'configure_backups': {'backup_target_url': lab.backup_target_url, 'backup_target_endpoint': lab.s3_endpoint,
                              'backup_target_access_key': lab.access_key, 'backup_target_secret_key': lab.secret_key,
                              'backup_target_sync': True},
        'backup_now': {'backup_now_system_backup_name': 'secret-scan'},
        'backup_cluster_state': {'cluster_state_dest': str(tmp_path / 'cluster-state'), 'cluster_state_upload': True,
                                 'cluster_state_bucket': lab.bucket, 'cluster_state_region': lab.region},
        'check_backups': {'check_backups_bucket': lab.bucket},
        # Restores only as far as they go without touching the live claims: the plan, the verification, the refusal.
        'restore_cluster': {'restore_cluster_bucket': lab.bucket, 'restore_cluster_region': lab.region,
                            'restore_cluster_plan_only': True, 'restore_cluster_cluster_state_dir': str(tmp_path / 'cluster-state')},
        'verify_cluster': {'verify_restore_cluster_state_dir': str(tmp_path / 'cluster-state'), 'verify_restore_wait_timeout': 30},
        'restore_app': {'restore_app_namespace': 'apps', 'restore_app_pvcs': ['app-data']},
    }.get(name, {})


def test_every_playbook_keeps_the_credentials_out_of_its_output(lab, run_playbook, tmp_path):
    names = collection_playbooks()
    assert {'configure_backups', 'backup_now', 'check_backups'} <= set(names), names
    setup_backups(lab, run_playbook, claims=('app-data',))
    # AWX's credential types inject these; nothing else tells the playbooks where the lab is.
    env = {'K8S_AUTH_KUBECONFIG': str(lab.kubeconfig), 'AWS_ENDPOINT_URL': lab.s3_endpoint, 'AWS_ACCESS_KEY_ID': lab.access_key,
           'AWS_SECRET_ACCESS_KEY': lab.secret_key, 'AWS_REGION': lab.region}
    credentials = lab_credentials(lab)
    assert len(credentials) == 3, sorted(credentials)  # secret key, access key ID and the API token are all scanned
    leaks, failed, ran = [], [], []
    for name in names:
        result = run_playbook('homelab.longhorn_dr.' + name, env=env, extra_vars=playbook_vars(name, lab, tmp_path),
                              verbosity=3, scan=False)
        assert 'ESTABLISH LOCAL CONNECTION' in result.stdout, result  # it really is -vvv output
        ran.append((name, result.rc, sum(len(play['tasks']) for play in result.output.get('plays', []))))
        leaks += ['%s: %s' % (name, finding) for finding in scan_for_credentials(result.stdout, result.stderr, credentials, result.output)]
        if result.rc != 0 and name in ORDER and name not in FAIL_BY_DESIGN:
            failed.append(str(result))
    assert not leaks, 'credentials in the -vvv output:\n' + '\n'.join(leaks)
    assert not failed, 'playbooks that failed against the lab:\n' + '\n'.join(failed)
    assert all(tasks > 0 for _name, _rc, tasks in ran), ran  # every playbook got as far as running tasks


def test_access_key_id_stays_out_of_module_arguments(lab, run_playbook):
    result = run_playbook('minio_bucket_check_once.yml')
    assert result.rc == 0, result
    assert scan_for_credentials(result.stdout, result.stderr, lab_credentials(lab), result.output, tolerated={}) == []


def test_the_scanner_finds_and_masks_credentials(lab, run_playbook, tmp_path):
    """Negative control: a playbook that shows the credentials must be caught, in every form, without the value."""
    playbook = tmp_path / 'show_credentials.yml'
    playbook.write_text('''
- name: Show what must never be shown
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Print the secret key
      ansible.builtin.debug:
        msg: "the secret is {{ lab_secret_key }}"
    - name: Print the API token inside base64
      ansible.builtin.debug:
        msg: "{{ ('token=' ~ lab_token ~ ';') | ansible.builtin.b64encode }}"
    - name: Pass the access key ID to a module
      ansible.builtin.command:
        cmd: "true {{ lab_access_key }}"
      changed_when: false
''', encoding='utf-8')
    result = run_playbook(playbook, extra_vars={'lab_token': lab.token}, scan=False)
    assert result.rc == 0, result
    credentials = lab_credentials(lab)
    findings = scan_for_credentials(result.stdout, result.stderr, credentials, result.output)
    joined = '\n'.join(findings)
    assert any(item.startswith('lab.secret_key appears ') and "task 'Print the secret key'" in item for item in findings), joined
    assert any(item.startswith('lab.token (Kubernetes bearer token of the lab kubeconfig) (base64) appears ')
               and "task 'Print the API token inside base64'" in item for item in findings), joined
    # The tolerance is for minio_bucket_check's arguments only, not for any module's.
    assert any(item.startswith('lab.access_key appears ') and "task 'Pass the access key ID to a module'" in item
               for item in findings), joined
    for value in credentials.values():
        assert value not in joined
        assert not any(form in joined for form in base64_forms(value))
    # The harness fails such a run unless told not to scan.
    with pytest.raises(pytest.fail.Exception, match='a credential of the lab appears in the output of') as failure:
        run_playbook(playbook, extra_vars={'lab_token': lab.token}, verbosity=0)
    assert lab.secret_key not in str(failure.value)


def test_scanner_on_text_lines_and_tolerated_module_arguments():
    """The parts a real run rarely shows: a hit in display text, base64 at each offset, the tolerance's limits."""
    secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
    credentials = {'secret': secret}
    stdout = 'Using /etc/ansible.cfg as config file\n<127.0.0.1> PUT /tmp/x TO /tmp/AnsiballZ_setup.py\nleaked %s here\n' % secret
    findings = scan_for_credentials(stdout, '', credentials)
    assert len(findings) == 1 and findings[0].startswith('secret appears 1 time(s) in stdout, first in line 3 after ')
    assert 'AnsiballZ_setup.py' in findings[0] and 'leaked %s here' % MASK in findings[0] and secret not in findings[0]
    for prefix in ('', 'a', 'ab', 'abc'):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            blob = encode((prefix + secret + 'tail').encode()).decode()
            found = scan_for_credentials('', 'data: %s\n' % blob, credentials)
            assert [item.split(' appears')[0] for item in found] == ['secret (base64)'], (prefix, found)
    assert scan_for_credentials('nothing to see\n', 'still nothing\n', credentials) == []

    access_key = 'AKIAIOSFODNN7EXAMPLE'

    def document(result):
        return {'plays': [{'tasks': [{'task': {'name': 'Read', 'path': 'p.yml:3'}, 'hosts': {'localhost': result}}]}], 'stats': {}}
    # The tolerance mechanism, with an explicit entry: the suite itself tolerates nothing.
    assert TOLERATED_DISCLOSURES == {}
    module = 'homelab.longhorn_dr.minio_bucket_check'
    allowed = {'lab.access_key': frozenset({module})}
    tolerated = document({'action': module, 'invocation': {'module_args': {'access_key': access_key}}})
    assert scan_for_credentials(json.dumps(tolerated), '', {'lab.access_key': access_key}, tolerated, tolerated=allowed) == []
    assert scan_for_credentials(json.dumps(tolerated), '', {'lab.access_key': access_key}, tolerated) != []
    in_message = document({'action': module, 'msg': 'denied for %s' % access_key,
                           'invocation': {'module_args': {'access_key': access_key}}})
    found = scan_for_credentials(json.dumps(in_message), '', {'lab.access_key': access_key}, in_message, tolerated=allowed)
    assert len(found) == 1 and found[0].startswith("lab.access_key appears 1 time(s) in stdout, first in task 'Read'"), found
    # The JSON document is found among -vvv display lines, and not mistaken for another JSON line.
    text = 'PLAYBOOK: x.yml\n{"not": "it"}\n%s\n<127.0.0.1> EXEC /bin/sh\n' % json.dumps(tolerated)
    assert parse_callback_output(text) == tolerated
    assert parse_callback_output('ERROR! the playbook could not be found\n') == {}
