# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two restore_cluster runs at once on the same rebuilt cluster (docs/reliability.md, "Two runs at once").

Two ansible-playbook processes start together, as two AWX jobs or two shells would. Each completes, or fails only
because the other created an object first (the API's "already exists"). Either way the cluster ends with one
Volume, one PV and one bound claim per backed-up claim, with the data, no run deleted anything, and a third run
afterwards completes and changes nothing.
"""

from __future__ import annotations

import collections
import json
import subprocess

import pytest

from tests.integration.conftest import (
    ANSIBLE_PLAYBOOK,
    INVENTORY,
    PLAYBOOK_TIMEOUT,
    REPO_ROOT,
    PlaybookResult,
    lab_credentials,
    lab_extra_vars,
    parse_callback_output,
    playbook_environment,
    resolve_playbook,
    scan_for_credentials,
)
from tests.integration.test_restore_cluster import CLAIMS, _backed_up_and_wiped, _data
from tests.integration.test_restore_cluster_faults import PLAYBOOK, _claims, _failed_tasks, _handle, _payload, _pvs, _volumes

pytestmark = pytest.mark.integration

ROLE = 'homelab.longhorn_dr.restore_cluster : '


def _start(lab, tmp_path, label, extra_vars):
    tmp_dir = tmp_path / label
    tmp_dir.mkdir()
    vars_file = tmp_dir / 'extra-vars.json'
    vars_file.touch(mode=0o600)
    vars_file.write_text(json.dumps({**lab_extra_vars(lab), **extra_vars}), encoding='utf-8')
    command = [str(ANSIBLE_PLAYBOOK), '-i', str(INVENTORY), '-e', f'@{vars_file}', '-vvv', resolve_playbook(PLAYBOOK)]
    # Files, not pipes: a full pipe would stall one run while the test waits for the other.
    with open(tmp_dir / 'stdout', 'w', encoding='utf-8') as out, open(tmp_dir / 'stderr', 'w', encoding='utf-8') as err:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=playbook_environment(tmp_dir), stdout=out, stderr=err)  # pylint: disable=consider-using-with
    return proc, tmp_dir


def test_two_restores_at_once_leave_one_volume_pv_and_claim_each(lab, run_playbook, tmp_path):
    volumes = _backed_up_and_wiped(lab, run_playbook)
    names = sorted(volumes.values())
    mark = lab.audit_mark()
    runs = [_start(lab, tmp_path, label, {'restore_cluster_method': 'volumes'}) for label in ('first', 'second')]
    for proc, tmp_dir in runs:
        proc.wait(timeout=PLAYBOOK_TIMEOUT)
        stdout, stderr = ((tmp_dir / name).read_text(encoding='utf-8') for name in ('stdout', 'stderr'))
        output = parse_callback_output(stdout)
        leaks = scan_for_credentials(stdout, stderr, lab_credentials(lab), output)
        assert leaks == [], leaks
        result = PlaybookResult(proc.args, proc.returncode, stdout, stderr, output)
        if result.rc == 0:
            report = result.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']
            assert report['failures'] == [] and sorted(v['volume'] for v in report['volumes']) == names, report
            continue
        # The runs do not coordinate: when both create the same object in the same instant, the API refuses the
        # second create and that run fails on it, naming it, and asks to run again. No other failure is allowed.
        failed = [(t['task']['name'], t['hosts']['localhost'].get('msg') or '') for t in result.tasks()
                  if t['hosts'].get('localhost', {}).get('failed')]
        assert failed and all('already exists' in message for _name, message in failed), failed or str(result)

    # Between them, the two runs created each Volume, PV and claim once (a refused duplicate create is not a write).
    created = collections.Counter(e['path'].rsplit('/', 1)[-1] for e in lab.writes_since(mark) if e['verb'] == 'create')
    assert (created['volumes'], created['persistentvolumes'], created['persistentvolumeclaims']) == (3, 3, 3), created

    # No duplicate and nothing lost: one Volume, one PV and one bound claim per claim, with the data.
    assert sorted(_volumes(lab)) == names
    pvs = _pvs(lab)
    assert collections.Counter(_handle(pv) for pv in pvs.values()) == collections.Counter(names)
    claims = _claims(lab)
    assert sorted(claims) == sorted(CLAIMS)
    for claim, volume in volumes.items():
        assert claims[claim]['status']['phase'] == 'Bound', claims[claim]
        assert _handle(pvs[claims[claim]['spec']['volumeName']]) == volume
        assert _data(lab, volume) == _payload(claim)
    # Neither run deleted what the other made.
    deleted = [(e['verb'], e['path']) for e in lab.writes_since(mark) if e['verb'] == 'delete']
    assert deleted == [], deleted

    again = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes'})
    assert again.rc == 0, _failed_tasks(again) or str(again)
    report = again.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']
    assert {v['volume_state'] for v in report['volumes']} == {'AlreadyRestored'}, report
    assert {v['claim_state'] for v in report['volumes']} == {'Bound'}, report
    assert again.changed() == 0
