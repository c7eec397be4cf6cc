# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""restore_cluster under faults (issue 4, required lab tests).

- Interrupted restore: the playbook is killed (SIGKILL, with its workers and module) in phase 4, after
  the first of three volumes is restored and while the second restores; or in phase 5, after the first
  PV is created and before its claim. The re-run completes with one Volume, one PV and one bound PVC
  per claim, nothing recreated or patched, and the data.
- S3 outage during the sync wait: the bucket stops serving backup configs right after the plan (so
  the plan itself is fine): the role retries a bounded number of times, fails naming the missing
  backups, and has restored nothing. A total outage from the same moment fails in phase 2 instead,
  within the sync timeout, with the target's Unavailable condition.
- API 5xx/429 (and a dropped connection) while the PVs and PVCs are created: refused requests are
  retried and the claims bind.
- Partial failure: one volume's restore fails in Longhorn; the report names it, the other claims are
  bound with their data, and the playbook fails at the end. Once the cause is gone, a re-run completes
  (what the role's failure message promises) without deleting the failed volume:
  tests/integration/test_restore_retry_keeps_failed_volume.py.

Every run's output is scanned for the lab's credentials: the ``run_playbook`` runs by the harness, the
killed runs here with the harness's scanner.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
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
from tests.integration.test_longhorn_volume_backup import setup_backups
from tests.integration.test_restore_cluster import CLAIMS, ROLE, _backed_up_and_wiped, _data

pytestmark = pytest.mark.integration

NS = 'longhorn-system'
APPS = 'apps'
PLAYBOOK = 'restore_cluster_lab.yml'
CREDENTIAL_SECRET = 'longhorn-backup-credentials'
VOLUMES_KEY = ('longhorn.io', 'volumes')
PVS_KEY = ('', 'persistentvolumes')
SECRETS_KEY = ('', 'secrets')
KILL_TIMEOUT = 240


def _payload(claim):
    return f'{claim} payload\n' * 1000


def _volumes(lab):
    items, _version = lab.store.list('volumes', NS)
    return {v['metadata']['name']: v for v in items}


def _pvs(lab):
    items, _version = lab.store.list('persistentvolumes')
    return {pv['metadata']['name']: pv for pv in items}


def _claims(lab):
    try:
        items, _version = lab.store.list('persistentvolumeclaims', APPS)
    except Exception:  # pylint: disable=broad-except
        return {}
    return {c['metadata']['name']: c for c in items}


def _handle(pv):
    return ((pv.get('spec') or {}).get('csi') or {}).get('volumeHandle')


def _restored(volume):
    return (volume.get('status') or {}).get('restoreRequired') is False


class _Trigger:
    """Runs ``action`` and sets ``fired`` on the ``count``-th API request of the run that ``match(request)`` accepts.

    Requests are seen at the lab's API proxy once the API server has answered and before the client hears the
    answer (Lab.add_request_listener): whatever ``action`` does (it must be quick and must not call the API)
    happens before the run can take its next step.
    """

    def __init__(self, lab, match, count=1, action=None):
        self.match = match
        self.count = count
        self.action = action
        self.seen = 0
        self.fired = threading.Event()
        lab.add_request_listener(self)

    def __call__(self, request):
        if self.fired.is_set() or not self.match(request):
            return
        self.seen += 1
        if self.seen >= self.count:
            if self.action is not None:
                self.action()
            self.fired.set()


def _processes():
    """{pid: (ppid, pgid, state)} of every process, from /proc."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat', 'rb') as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b')') + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        found[int(entry)] = (int(fields[1]), int(fields[2]), fields[0].decode())
    return found


def _kill_tree(root, groups):
    """SIGKILL ``root``, its descendants and their process groups; adds the groups to ``groups``.

    ansible-playbook runs each task in a worker that calls setsid(), so killing the playbook's own
    process group would leave the running module alive; this reaches it. Late forks inherit a group.
    """
    processes = _processes()
    children = collections.defaultdict(list)
    for pid, (ppid, _pgid, _state) in processes.items():
        children[ppid].append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    groups.update(processes[pid][1] for pid in tree if pid in processes)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _survivors(groups, timeout=10.0):
    """Processes of ``groups`` still alive (not zombies) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = sorted(pid for pid, (_ppid, pgid, state) in _processes().items() if pgid in groups and state != 'Z')
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _run_and_kill(lab, tmp_path, label, match, extra_vars, count=1):
    """Start the restore playbook as the harness would; SIGKILL it with its module at the ``count``-th matching API request.

    The kill is sent from the lab's API proxy before the answer to that request is relayed, to the playbook,
    its workers and the running module, so they make at most the requests they already have in flight.
    Returns (stdout, stderr), already scanned for the lab's credentials.
    """
    tmp_dir = tmp_path / f'killed-{label}'
    tmp_dir.mkdir()
    vars_file = tmp_dir / 'extra-vars.json'
    vars_file.touch(mode=0o600)
    vars_file.write_text(json.dumps({**lab_extra_vars(lab), **extra_vars}), encoding='utf-8')
    command = [str(ANSIBLE_PLAYBOOK), '-i', str(INVENTORY), '-e', f'@{vars_file}', '-vvv', resolve_playbook(PLAYBOOK)]
    out_path, err_path = tmp_dir / 'stdout', tmp_dir / 'stderr'
    trigger = _Trigger(lab, match, count=count)
    groups = set()
    with open(out_path, 'w', encoding='utf-8') as out, open(err_path, 'w', encoding='utf-8') as err:
        # A session of its own, away from pytest's; the workers setsid() themselves, hence _kill_tree.
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=playbook_environment(tmp_dir), stdout=out, stderr=err,  # pylint: disable=consider-using-with
                                start_new_session=True)
        groups.add(proc.pid)
        trigger.action = lambda: _kill_tree(proc.pid, groups)
        try:
            deadline = time.monotonic() + KILL_TIMEOUT
            while not trigger.fired.wait(0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
            proc.wait(timeout=30 if trigger.fired.is_set() else 0.1)
        except subprocess.TimeoutExpired:
            pass
        finally:
            trigger.action = None
            if proc.poll() is None:
                _kill_tree(proc.pid, groups)
                proc.wait(timeout=30)
    stdout, stderr = out_path.read_text(encoding='utf-8'), err_path.read_text(encoding='utf-8')
    leaks = scan_for_credentials(stdout, stderr, lab_credentials(lab), parse_callback_output(stdout))
    assert leaks == [], f'a credential of the lab appears in the output of the killed {label} run: {leaks}'
    assert lab.secret_key not in stdout + stderr
    assert trigger.fired.is_set(), \
        f'the {label} run ended (rc={proc.returncode}) before it reached the point to interrupt:\n{stdout[-6000:]}\n{stderr[-3000:]}'
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    assert _survivors(groups) == [], f'processes of the killed {label} run still run (the module would go on restoring)'
    return stdout, stderr


def _failed_tasks(result):
    """'task: message' of the failed tasks of a run, one a line: a short assertion message."""
    return '\n'.join('%s: %s' % (t['task']['name'], t['hosts']['localhost'].get('msg'))
                     for t in result.tasks() if t['hosts'].get('localhost', {}).get('failed'))


def _uids(lab):
    """uid of every Volume, PV and PVC of the restore, by (kind, name)."""
    found = {('volume', n): v['metadata']['uid'] for n, v in _volumes(lab).items()}
    found.update({('pv', n): pv['metadata']['uid'] for n, pv in _pvs(lab).items()})
    found.update({('pvc', n): c['metadata']['uid'] for n, c in _claims(lab).items()})
    return found


def _resume_and_verify(lab, run_playbook, volumes):
    """Re-run the restore after an interruption: it completes, duplicates nothing, clobbers nothing, and the data verifies."""
    names = sorted(volumes.values())
    kept = _uids(lab)
    pvs_before = len(_pvs(lab))
    mark = lab.audit_mark()
    finished = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes'})
    assert finished.rc == 0, _failed_tasks(finished) or str(finished)
    report = finished.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']
    assert report['failures'] == [], report
    assert {v['claim_state'] for v in report['volumes']} <= {'Created', 'Bound', 'Pending'}, report

    # Nothing duplicated: one Volume, one PV and one bound claim per backed-up claim, and nothing else.
    final_volumes = _volumes(lab)
    assert sorted(final_volumes) == names
    pvs = _pvs(lab)
    per_volume = collections.Counter(_handle(pv) for pv in pvs.values())
    assert per_volume == collections.Counter(names), per_volume
    claims = _claims(lab)
    assert sorted(claims) == sorted(CLAIMS), sorted(claims)
    for claim, volume in volumes.items():
        pvc = claims[claim]
        assert pvc['status']['phase'] == 'Bound', pvc
        assert _handle(pvs[pvc['spec']['volumeName']]) == volume, (claim, pvc['spec']['volumeName'])
        assert pvs[pvc['spec']['volumeName']]['status']['phase'] == 'Bound'
        assert _data(lab, volume) == _payload(claim), f'{claim}: data of {volume} does not verify'

    # Nothing clobbered: what the interrupted runs made is the same object (same uid), and the re-run
    # only created what was missing; it never deleted, replaced or patched a Volume, PV or PVC.
    now = _uids(lab)
    assert {key: now.get(key) for key in kept} == kept
    touched = [(e['verb'], e['path']) for e in lab.writes_since(mark)
               if any(part in e['path'] for part in ('/persistentvolumes', '/persistentvolumeclaims', '/volumes'))]
    assert all(verb == 'create' for verb, _path in touched), touched
    assert len([p for _v, p in touched if p.endswith('/persistentvolumes')]) == len(names) - pvs_before, touched
    assert not finished.mentions(lab.secret_key)
    return finished, report


def test_interrupted_restore_resumes_without_duplicates(lab, run_playbook, tmp_path):
    volumes = _backed_up_and_wiped(lab, run_playbook)
    names = sorted(volumes.values())
    # About 8 s per volume (one 2 MiB block at 0.25 MB/s): the second restore is still running when the run
    # has been killed and the test reads the volumes, even on a loaded machine (2 s was not, in CI).
    lab.ctx.config.restore_speed_mbps = 0.25

    # Killed in phase 4, one volume at a time, the moment the second Volume is created: the first volume
    # is restored, the second is restoring, the third is not started.
    _run_and_kill(lab, tmp_path, 'phase-4', lambda r: r.created(VOLUMES_KEY),
                  {'restore_cluster_method': 'volumes', 'restore_cluster_concurrency': 1}, count=2)
    interrupted = _volumes(lab)
    assert sorted(interrupted) == names[:2], sorted(interrupted)
    assert [n for n in names[:2] if _restored(interrupted[n])] == names[:1], \
        {n: (v.get('status') or {}).get('restoreRequired') for n, v in interrupted.items()}
    assert _pvs(lab) == {} and _claims(lab) == {}

    _finished, report = _resume_and_verify(lab, run_playbook, volumes)
    # The volumes of the interrupted run are taken over (the one still restoring is waited for), the third restored.
    assert {v['volume']: v['volume_state'] for v in report['volumes']} == {
        names[0]: 'AlreadyRestored', names[1]: 'AlreadyRestored', names[2]: 'Restored'}, report
    assert {v['claim_state'] for v in report['volumes']} == {'Created'}, report


def test_restore_interrupted_between_pv_and_pvc_resumes(lab, run_playbook, tmp_path):
    """Killed in phase 5 right after the first PV is created, before its claim: the re-run still knows the claim."""
    volumes = _backed_up_and_wiped(lab, run_playbook)
    names = sorted(volumes.values())
    _run_and_kill(lab, tmp_path, 'phase-5', lambda r: r.created(PVS_KEY), {'restore_cluster_method': 'volumes'})
    assert sorted(_volumes(lab)) == names
    assert len(_pvs(lab)) == 1 and _claims(lab) == {}, (sorted(_pvs(lab)), sorted(_claims(lab)))
    # Longhorn records the new PV on its volume long before anyone re-runs, and resets the kubernetesStatus
    # restored from the backup while doing so (lm controller/kubernetes_pv_controller.go syncKubernetesStatus:
    # a different pvName empties it): the claim is named there again only once the claim binds.
    pv_name, pv = next(iter(_pvs(lab).items()))
    deadline = time.monotonic() + 20
    while ((_volumes(lab)[_handle(pv)].get('status') or {}).get('kubernetesStatus') or {}).get('pvName') != pv_name:
        assert time.monotonic() < deadline, f'the lab never recorded PV {pv_name} in the kubernetesStatus of volume {_handle(pv)}'
        time.sleep(0.2)

    _finished, report = _resume_and_verify(lab, run_playbook, volumes)
    assert {v['volume_state'] for v in report['volumes']} == {'AlreadyRestored'}, report


def test_s3_outage_during_sync_wait_fails_clearly_and_restores_nothing(lab, run_playbook):
    _backed_up_and_wiped(lab, run_playbook)
    # The outage starts when phase 1 writes the credential Secret, i.e. after the plan read the bucket:
    # from then on the bucket cuts every request for a backup's config (the listings still answer, so
    # the BackupTarget is available and synced, but Longhorn can never sync a Backup).
    _Trigger(lab, lambda r: r.created(SECRETS_KEY, CREDENTIAL_SECRET),
             action=lambda: lab.s3_fault('down', paths='backups/backup_'))
    mark = lab.audit_mark()
    sync_timeout = 20
    started = time.monotonic()
    failed = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes', 'restore_cluster_sync_timeout': sync_timeout})
    elapsed = time.monotonic() - started
    assert failed.rc != 0, str(failed)
    assert lab.s3.faults.current['mode'] == 'down', 'the outage never started'

    plan = failed.task_result(ROLE + 'Build the plan')['ansible_facts']['restore_cluster_plan']
    assert plan['ok'] is True and len(plan['backups']) == len(CLAIMS), plan
    waited = failed.task_result(ROLE + 'Wait until Longhorn has synced every planned backup')
    # Bounded retries: it polled more than once, at most once per 5 s of the sync timeout, then gave up.
    assert 1 < waited['attempts'] <= sync_timeout // 5 + 1, waited.get('attempts')
    assert elapsed < sync_timeout + 90, elapsed
    refused = failed.task_result(ROLE + 'Refuse to restore a subset when backups are missing')
    assert refused.get('failed') is True, refused
    assert f'within {sync_timeout}s' in refused['msg'] and 'nothing was restored' in refused['msg'], refused['msg']
    for backup in plan['backups']:
        assert backup in refused['msg'], (backup, refused['msg'])
    assert failed.failures() == 1

    # Nothing was restored: only the Secret and the BackupTarget were written.
    assert _volumes(lab) == {} and _pvs(lab) == {} and _claims(lab) == {}
    written = [(e['verb'], e['path']) for e in lab.writes_since(mark)]
    assert written and all('/secrets' in path or '/backuptargets' in path for _verb, path in written), written
    assert not failed.mentions(lab.secret_key)


def test_api_faults_retried_and_partial_failure_reported(lab, run_playbook):
    volumes = _backed_up_and_wiped(lab, run_playbook)
    broken_claim = 'db-data'
    broken = volumes[broken_claim]
    healthy = {claim: volume for claim, volume in volumes.items() if claim != broken_claim}
    lab.fail_restore(broken)
    # The API server refuses the first PV creations (503) and the first PVC creations (429, Retry-After).
    lab.api_fault(r'^/api/v1/persistentvolumes$', status=503, count=2, methods=['POST'])
    lab.api_fault(rf'^/api/v1/namespaces/{APPS}/persistentvolumeclaims$', status=429, count=2, methods=['POST'])
    # Then one PVC creation is held for 2 s and its connection dropped (recorded with code 0), before it is stored.
    lab.api_fault(rf'^/api/v1/namespaces/{APPS}/persistentvolumeclaims$', timeout=2, count=1, methods=['POST'])
    mark = lab.audit_mark()
    result = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes'})
    assert result.rc != 0, str(result)
    assert lab.faults.api_faults() == [], 'some injected API faults were never hit'

    # The report names the failed claim and volume; the others are restored and their claims created.
    report = result.task_result(ROLE + 'Build the report')['ansible_facts']['restore_cluster_report']
    states = {v['pvc']: (v['volume_state'], v['claim_state']) for v in report['volumes']}
    assert states == {**{f'{APPS}/{c}': ('Restored', 'Created') for c in healthy},
                      f'{APPS}/{broken_claim}': ('Failed', 'not created')}, states
    assert len(report['failures']) == 1, report['failures']
    assert report['failures'][0].startswith(f'{APPS}/{broken_claim}: ') and broken in report['failures'][0], report['failures']
    entry = next(v for v in report['volumes'] if v['pvc'] == f'{APPS}/{broken_claim}')
    assert broken in (entry['error'] or '') and 'failed' in entry['error'], entry
    final = result.task_result(ROLE + 'Fail when any volume or claim did not come back')
    assert final.get('failed') is True and f'{APPS}/{broken_claim}' in final['msg'], final
    assert result.failures() == 1, 'the playbook must fail once, at the end, not at the volume'
    # The last task that ran (the cleanup in the role's always: section is skipped here: no fetched export).
    ran = [t['task']['name'] for t in result.tasks() if not all(h.get('skipped') for h in t['hosts'].values())]
    assert ran[-1] == ROLE + 'Fail when any volume or claim did not come back', ran[-3:]

    # The others complete: bound, with their data; the failed volume has no PV and no claim.
    claims = _claims(lab)
    pvs = _pvs(lab)
    assert sorted(claims) == sorted(healthy), sorted(claims)
    for claim, volume in healthy.items():
        assert claims[claim]['status']['phase'] == 'Bound', claims[claim]
        assert _handle(pvs[claims[claim]['spec']['volumeName']]) == volume
        assert _data(lab, volume) == _payload(claim)
    assert sorted(_handle(pv) for pv in pvs.values()) == sorted(healthy.values())

    # The refused requests are in the audit log, each followed by a successful retry.
    entries = lab.audit_entries()[mark:]
    pv_codes = [int(e['code']) for e in entries if e['method'] == 'POST' and e['path'] == '/api/v1/persistentvolumes' and not e['dryRun']]
    pvc_codes = [int(e['code']) for e in entries
                 if e['method'] == 'POST' and e['path'] == f'/api/v1/namespaces/{APPS}/persistentvolumeclaims' and not e['dryRun']]
    assert pv_codes[:2] == [503, 503] and sorted(pv_codes[2:]) == [201] * len(healthy), pv_codes
    assert pvc_codes[:3] == [429, 429, 0] and sorted(pvc_codes[3:]) == [201] * len(healthy), pvc_codes
    assert not result.mentions(lab.secret_key)


def test_total_s3_outage_after_the_plan_fails_at_the_target_and_restores_nothing(lab, run_playbook):
    """The whole S3 endpoint goes down once the plan has read the bucket: phase 2 waits a bounded time for the target."""
    volumes = setup_backups(lab, run_playbook, claims=('app-data',))
    backup = run_playbook('longhorn_volume_backup.yml')
    assert backup.rc == 0, str(backup)
    lab.wipe_cluster()
    _Trigger(lab, lambda r: r.created(SECRETS_KEY, CREDENTIAL_SECRET),
             action=lambda: lab.s3_fault('down'))
    mark = lab.audit_mark()
    sync_timeout = 15
    started = time.monotonic()
    failed = run_playbook(PLAYBOOK, extra_vars={'restore_cluster_method': 'volumes', 'restore_cluster_sync_timeout': sync_timeout})
    elapsed = time.monotonic() - started
    assert failed.rc != 0, str(failed)
    assert lab.s3.faults.current['mode'] == 'down', 'the outage never started'
    assert failed.task_result(ROLE + 'Build the plan')['ansible_facts']['restore_cluster_plan']['volumes'] == sorted(volumes.values())
    reported = failed.task_result('homelab.longhorn_dr.backup_target : Report why the backup target could not be configured')
    assert reported.get('failed') is True, reported
    # Bounded, and says why: the timeout, and the target's Unavailable condition (the S3 error, ref §1.1, §7).
    assert f'Timed out after {sync_timeout}s' in reported['msg'] and 'failed to list system backups' in reported['msg'], reported['msg']
    assert elapsed < sync_timeout + 90, elapsed
    assert failed.failures() == 1
    assert _volumes(lab) == {} and _pvs(lab) == {} and _claims(lab) == {}
    written = [(e['verb'], e['path']) for e in lab.writes_since(mark)]
    assert written and all('/secrets' in path or '/backuptargets' in path for _verb, path in written), written
    assert not failed.mentions(lab.secret_key)
