# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""restore_cluster killed (SIGKILL, with its workers and module) in the phases test_restore_cluster_faults does not
cover, then run again (docs/reliability.md, "Kill and re-run").

test_restore_cluster_faults kills the run in phase 4 (volumes) and phase 5 (claims). Here:

- plan: at the start of 'Build the plan', after the bucket, the PVCs and the volumes were read. Nothing was written.
- target: the moment the credential Secret is created, inside longhorn_backup_target, before the BackupTarget is
  written. Only the Secret exists.
- report: at the start of 'Build the report', after every volume is restored and every claim bound.

The three kills happen one after the other on one lab (a lab, a backup and a wipe cost a minute): each re-run gets
past the phase the run before it died in. The last re-run completes: one Volume, one PV and one bound claim per
backed-up claim, the data verifies, nothing the killed runs made is replaced or patched, and nothing changes.

Kills at a task boundary use a callback plugin written by the test (the collection knows nothing of it): it
blocks the controller at the start of the named task, and the test kills the blocked process tree.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.integration.conftest import (
    ANSIBLE_PLAYBOOK,
    INVENTORY,
    REPO_ROOT,
    lab_credentials,
    lab_extra_vars,
    parse_callback_output,
    playbook_environment,
    resolve_playbook,
    scan_for_credentials,
)
from tests.integration.test_restore_cluster import CLAIMS, _backed_up_and_wiped
from tests.integration.test_restore_cluster_faults import (
    CREDENTIAL_SECRET,
    PLAYBOOK,
    SECRETS_KEY,
    _claims,
    _kill_tree,
    _pvs,
    _resume_and_verify,
    _run_and_kill,
    _survivors,
    _volumes,
)

pytestmark = pytest.mark.integration

ROLE = 'homelab.longhorn_dr.restore_cluster : '
PAUSE_TIMEOUT = 300
PAUSE_CALLBACK = '''
# Test-only: blocks the controller at the start of the task named in LONGHORN_DR_TEST_PAUSE_AT, after
# touching LONGHORN_DR_TEST_PAUSED, so the test can SIGKILL the run at that task boundary.
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'pause_at_task'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task.get_name() == os.environ['LONGHORN_DR_TEST_PAUSE_AT']:
            with open(os.environ['LONGHORN_DR_TEST_PAUSED'], 'w', encoding='utf-8') as handle:
                handle.write(task.get_name())
            time.sleep(3600)
'''


def _run_and_kill_at_task(lab, tmp_path, label, task_name, extra_vars):
    """Start the restore playbook as the harness would, and SIGKILL it (with any worker) once it blocks at ``task_name``.

    Returns (stdout, stderr), scanned for the lab's credentials.
    """
    tmp_dir = tmp_path / f'killed-{label}'
    plugins = tmp_dir / 'callback_plugins'
    plugins.mkdir(parents=True)
    (plugins / 'pause_at_task.py').write_text(PAUSE_CALLBACK, encoding='utf-8')
    paused = tmp_dir / 'paused'
    vars_file = tmp_dir / 'extra-vars.json'
    vars_file.touch(mode=0o600)
    vars_file.write_text(json.dumps({**lab_extra_vars(lab), **extra_vars}), encoding='utf-8')
    env = {**playbook_environment(tmp_dir), 'ANSIBLE_CALLBACK_PLUGINS': str(plugins), 'ANSIBLE_CALLBACKS_ENABLED': 'pause_at_task',
           'LONGHORN_DR_TEST_PAUSE_AT': task_name, 'LONGHORN_DR_TEST_PAUSED': str(paused)}
    command = [str(ANSIBLE_PLAYBOOK), '-i', str(INVENTORY), '-e', f'@{vars_file}', '-vvv', resolve_playbook(PLAYBOOK)]
    out_path, err_path = tmp_dir / 'stdout', tmp_dir / 'stderr'
    groups = set()
    with open(out_path, 'w', encoding='utf-8') as out, open(err_path, 'w', encoding='utf-8') as err:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err,  # pylint: disable=consider-using-with
                                start_new_session=True)
        groups.add(proc.pid)
        try:
            deadline = time.monotonic() + PAUSE_TIMEOUT
            while not paused.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            _kill_tree(proc.pid, groups)
            proc.wait(timeout=30)
    stdout, stderr = out_path.read_text(encoding='utf-8'), err_path.read_text(encoding='utf-8')
    leaks = scan_for_credentials(stdout, stderr, lab_credentials(lab), parse_callback_output(stdout))
    assert leaks == [], f'a credential of the lab appears in the output of the killed {label} run: {leaks}'
    assert paused.exists(), f'the {label} run ended (rc={proc.returncode}) before task {task_name!r}:\n{stdout[-6000:]}\n{stderr[-3000:]}'
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    assert _survivors(groups) == [], f'processes of the killed {label} run still run'
    return stdout, stderr


def _secret(lab):
    return lab.store.try_get('secrets', 'longhorn-system', CREDENTIAL_SECRET)


def test_killed_in_the_plan_target_and_report_phases_each_rerun_goes_on(lab, run_playbook, tmp_path):
    """One lab, three kills in a row: each re-run gets past the phase the run before it died in; the last completes."""
    volumes = _backed_up_and_wiped(lab, run_playbook)
    target_before = lab.store.get('backuptargets', 'longhorn-system', 'default')['spec']

    # 1. Plan: killed at the start of 'Build the plan'. The plan only reads, so nothing at all was written.
    mark = lab.audit_mark()
    _run_and_kill_at_task(lab, tmp_path, 'plan', ROLE + 'Build the plan', {'restore_cluster_method': 'volumes'})
    assert lab.writes_since(mark) == [], lab.writes_since(mark)
    assert _secret(lab) is None
    assert _volumes(lab) == {} and _pvs(lab) == {} and _claims(lab) == {}

    # 2. Target: the re-run gets past the plan and is killed inside longhorn_backup_target, the moment phase 1
    # created the credential Secret and before phase 2 wrote the BackupTarget.
    _run_and_kill(lab, tmp_path, 'target', lambda r: r.created(SECRETS_KEY, CREDENTIAL_SECRET), {'restore_cluster_method': 'volumes'})
    assert _secret(lab) is not None
    assert lab.store.get('backuptargets', 'longhorn-system', 'default')['spec'] == target_before, 'the target was written'
    assert _volumes(lab) == {} and _pvs(lab) == {} and _claims(lab) == {}

    # 3. Report: the next re-run takes the Secret over, restores every volume, binds every claim, and is killed at
    # the start of 'Build the report'; no report was written.
    report_file = tmp_path / 'report.json'
    _run_and_kill_at_task(lab, tmp_path, 'report', ROLE + 'Build the report',
                          {'restore_cluster_method': 'volumes', 'restore_cluster_report_file': str(report_file)})
    assert lab.store.get('backuptargets', 'longhorn-system', 'default')['status']['available'] is True
    assert sorted(_volumes(lab)) == sorted(volumes.values())
    assert sorted(_claims(lab)) == sorted(CLAIMS)
    assert {c['status']['phase'] for c in _claims(lab).values()} == {'Bound'}
    assert not report_file.exists()

    # 4. The last re-run completes and only reports: one Volume, PV and bound claim per claim, the data verifies,
    # nothing the killed runs made was replaced or patched, and nothing changed.
    finished, report = _resume_and_verify(lab, run_playbook, volumes)
    assert {v['volume_state'] for v in report['volumes']} == {'AlreadyRestored'}, report
    assert {v['claim_state'] for v in report['volumes']} == {'Bound'}, report
    assert finished.changed() == 0, [t['task']['name'] for t in finished.tasks() if t['hosts']['localhost'].get('changed')]
