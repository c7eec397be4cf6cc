# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A retried restore deletes nothing a user may need (issue 10, finding 3).

A restore fails in Longhorn; the user then writes into the failed volume (the lab keeps a volume's data
as a directory, so the test writes there, as setup_backups does). Once the cause is fixed, the re-run the
role's failure message recommends completes with no manual step, even when it is first killed (SIGKILL)
while the retry volume restores: the claim comes back under its original PVC and PV names on one fresh
volume, verify_restore passes, and the failed volume and the user's data are still there, named in the
report with the one command that removes it. A further re-run changes nothing.
"""

from __future__ import annotations

import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_restore import restored_from, untouched_refusals
from tests.integration.helpers import volume_file, wait_until
from tests.integration.test_longhorn_volume_backup import setup_backups
from tests.integration.test_restore_cluster_faults import VOLUMES_KEY, _run_and_kill

pytestmark = pytest.mark.integration

NS = 'longhorn-system'
APPS = 'apps'
PLAYBOOK = 'restore_cluster_lab.yml'
ROLE = 'homelab.longhorn_dr.restore_cluster : '
VERIFY_JUDGE = 'homelab.longhorn_dr.verify_restore : Judge the restore'
USER_FILE = 'written-after-the-failure.txt'
USER_TEXT = 'the user wrote this into the failed volume\n'


def _volumes(lab):
    return {v['metadata']['name']: v for v in lab.store.list('volumes', NS)[0]}


def _pvs(lab):
    return {pv['metadata']['name']: pv for pv in lab.store.list('persistentvolumes')[0]}


def _handle(pv):
    return ((pv.get('spec') or {}).get('csi') or {}).get('volumeHandle')


def _untouched_refusals(lab, name):
    volume = _volumes(lab)[name]
    backup = lab.store.get('backups', NS, restored_from(volume)[0])
    # longhorn.io's, not storage.k8s.io's VolumeAttachment.
    attachment = lab.store.try_get(lab.store.registry.by_plural('volumeattachments', 'longhorn.io'), NS, name)
    snapshots = [s for s in lab.store.list(lab.store.registry.by_plural('snapshots', 'longhorn.io'), NS)[0]
                 if (s['metadata'].get('labels') or {}).get('longhornvolume') == name]
    return untouched_refusals(volume, backup['status']['url'], backup, list(_pvs(lab).values()), attachment, snapshots)


def _report(result):
    return result.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']


def test_retry_restores_into_a_fresh_volume_and_keeps_the_failed_one(lab, run_playbook, tmp_path):
    claims = ('app-data', 'db-data')
    volumes = setup_backups(lab, run_playbook, claims=claims)
    backup = run_playbook('longhorn_volume_backup.yml')
    assert backup.rc == 0, str(backup)
    lab.wipe_cluster()
    broken = volumes['db-data']
    lab.fail_restore(broken)
    failed = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes'})
    assert failed.rc != 0, str(failed)
    assert 'run again' in failed.task_result(ROLE + 'Fail when any volume or claim did not come back')['msg']

    # Freshly failed, the volume is what delete_untouched_failed can prove untouched: the lab's Longhorn
    # records every field the proof reads, so the opt-in is not refused by construction.
    refusals = []
    try:
        wait_until(lambda: not refusals.append(_untouched_refusals(lab, broken)) and refusals[-1] == [], what='no refusal', timeout=30)
    except AssertionError:
        raise AssertionError(f'delete_untouched_failed would refuse the freshly failed volume {broken}: {refusals[-1]}') from None

    # The user gets at the failed volume and writes into it.
    with open(f'{lab.ctx.volume_data_dir(broken)}/{USER_FILE}', 'w', encoding='utf-8') as handle:
        handle.write(USER_TEXT)

    lab.clear_faults()  # the cause is fixed
    mark = lab.audit_mark()
    # The re-run is killed the moment it creates a volume (about 2 s of restore at 1 MB/s: still restoring).
    speed = lab.ctx.config.restore_speed_mbps
    lab.ctx.config.restore_speed_mbps = 1.0
    try:
        _run_and_kill(lab, tmp_path, 'retry', lambda r: r.created(VOLUMES_KEY), {'restore_cluster_method': 'volumes'})
    finally:
        lab.ctx.config.restore_speed_mbps = speed
    assert volume_file(lab, broken, USER_FILE) == USER_TEXT, 'the data written into the failed volume is gone'

    again = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes'})
    report = _report(again)
    assert again.rc == 0 and report['failures'] == [], report['failures'] or str(again)

    # Nothing was deleted: the failed volume and what the user wrote into it are still there.
    assert volume_file(lab, broken, USER_FILE) == USER_TEXT, 'the data written into the failed volume is gone'
    deletes = [(e['verb'], e['path']) for e in lab.writes_since(mark) if e['verb'] == 'delete']
    assert deletes == [], deletes
    found = _volumes(lab)
    assert broken in found, sorted(found)

    # The claim is back under its original PVC and PV names, on one fresh volume (the killed run's) restored from the same backup.
    fresh = sorted(set(found) - set(volumes.values()))
    assert len(fresh) == 1, sorted(found)
    retry = fresh[0]
    assert retry.startswith(broken[:20]) and len(retry) <= 40, retry
    pvc = lab.store.get('persistentvolumeclaims', APPS, 'db-data')
    assert pvc['status']['phase'] == 'Bound' and pvc['spec']['volumeName'] == broken, pvc['spec']
    assert _handle(_pvs(lab)[broken]) == retry
    assert volume_file(lab, retry) == 'db-data payload\n' * 1000
    assert volume_file(lab, retry, USER_FILE) is None

    # The report names the kept volume and the one command that removes it.
    entry = next(v for v in report['volumes'] if v['pvc'] == f'{APPS}/db-data')
    assert entry['volume'] == retry and entry['volume_state'] == 'AlreadyRestored' and entry['claim_state'] == 'Created', entry
    assert [k['volume'] for k in report['kept_failed_volumes']] == [broken], report
    command = f'kubectl -n {NS} delete volumes.longhorn.io {broken}'
    assert report['kept_failed_volumes'][0]['delete_command'] == command, report
    shown = '\n'.join(again.task_result(ROLE + 'Show the report')['msg'])
    assert broken in shown and command in shown, shown

    # verify_restore agrees: each claim bound to a volume restored from its own backup, volumes not faulted.
    verified = run_playbook('homelab.longhorn_dr.verify_cluster', extra_vars={
        'longhorn_dr_kubeconfig': str(lab.kubeconfig), 'verify_restore_cluster_state_dir': '', 'verify_restore_wait_timeout': 20,
        'verify_restore_expected_pvcs': [{'namespace': APPS, 'name': c, 'volume': v} for c, v in volumes.items()]})
    assert verified.rc == 0, str(verified)
    verdict = verified.task_result(VERIFY_JUDGE)['ansible_facts']['verify_restore__result']
    assert verdict['passed'] is True, verdict['report']
    assert {c['name']: c['volume'] for c in verdict['pvcs']} == {'app-data': volumes['app-data'], 'db-data': retry}, verdict['pvcs']

    # A further run recognises the retry volume as restored: nothing new, nothing changed.
    mark = lab.audit_mark()
    rerun = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes'})
    assert rerun.rc == 0, str(rerun)
    assert rerun.changed() == 0, [t['task']['name'] for t in rerun.tasks() if t['hosts']['localhost'].get('changed')]
    touched = [(e['verb'], e['path']) for e in lab.writes_since(mark) if '/volumes' in e['path'] or '/persistentvolume' in e['path']]
    assert touched == [], touched
    assert sorted(_volumes(lab)) == sorted(found)
    states = {v['pvc']: (v['volume'], v['volume_state'], v['claim_state']) for v in _report(rerun)['volumes']}
    assert states[f'{APPS}/db-data'] == (retry, 'AlreadyRestored', 'Bound'), states
    assert volume_file(lab, broken, USER_FILE) == USER_TEXT
