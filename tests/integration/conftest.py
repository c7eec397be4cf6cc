# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration harness: real ``ansible-playbook`` processes against the lab.

``run_playbook(playbook, **options)`` runs one playbook against the test's lab
and returns a :class:`PlaybookResult`. The lab's connection details reach the
playbook as extra vars (``lab_kubeconfig``, ``lab_s3_endpoint``, ``lab_bucket``,
``lab_region``, ``lab_access_key``, ``lab_secret_key``), read from a 0600 file
rather than the command line. Output comes from the ``ansible.posix.json``
stdout callback, so tests assert on structured task results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest

INTEGRATION_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = INTEGRATION_DIR.parent.parent
PLAYBOOK_DIR = INTEGRATION_DIR / 'playbooks'
INVENTORY = INTEGRATION_DIR / 'inventory.yml'
# The ansible-playbook next to the Python running pytest (the project venv).
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / 'ansible-playbook'
PLAYBOOK_TIMEOUT = 600

# Settings from the developer's shell that could point a test at a real
# cluster, real credentials or other output formats.
LEAKY_ENV_PREFIXES = ('K8S_AUTH_', 'AWS_', 'ANSIBLE_', 'KUBECONFIG')


@dataclasses.dataclass
class PlaybookResult:
    """What one ansible-playbook run did."""

    command: list[str]
    rc: int
    stdout: str
    stderr: str
    output: dict

    @property
    def stats(self) -> dict:
        """Play recap per host: ok, changed, failures, unreachable, skipped, ..."""
        return self.output.get('stats', {})

    def tasks(self) -> list[dict]:
        """Every task entry of every play, in order."""
        return [task for play in self.output.get('plays', []) for task in play.get('tasks', [])]

    def task_result(self, name: str, host: str = 'localhost') -> dict:
        """The result of the last task called ``name`` on ``host``."""
        matches = [task['hosts'][host] for task in self.tasks() if task['task']['name'] == name and host in task.get('hosts', {})]
        if not matches:
            names = [task['task']['name'] for task in self.tasks()]
            raise KeyError(f'no result for task {name!r} on {host}; tasks that ran: {names}')
        return matches[-1]

    def changed(self, host: str = 'localhost') -> int:
        return self.stats[host]['changed']

    def failures(self, host: str = 'localhost') -> int:
        return self.stats[host]['failures'] + self.stats[host]['unreachable']

    def mentions(self, text: str) -> bool:
        """Whether ``text`` appears anywhere in the output (e.g. a secret that must not)."""
        return text in self.stdout or text in self.stderr

    def __str__(self) -> str:
        return f'{" ".join(self.command)} -> rc={self.rc}\n--- stdout ---\n{self.stdout[-20000:]}\n--- stderr ---\n{self.stderr[-10000:]}'


def lab_extra_vars(lab) -> dict:
    return {
        'lab_kubeconfig': str(lab.kubeconfig),
        'lab_s3_endpoint': lab.s3_endpoint,
        'lab_bucket': lab.bucket,
        'lab_region': lab.region,
        'lab_access_key': lab.access_key,
        'lab_secret_key': lab.secret_key,
    }


def resolve_playbook(playbook: str | os.PathLike) -> str:
    """A path, a name under tests/integration/playbooks/, or a collection playbook FQCN."""
    path = pathlib.Path(playbook)
    for candidate in (path, PLAYBOOK_DIR / path, REPO_ROOT / path):
        if candidate.is_file():
            return str(candidate.resolve())
    if not path.suffix and str(playbook).count('.') >= 2:
        return str(playbook)  # e.g. homelab.longhorn_dr.restore; ansible-playbook resolves it
    raise FileNotFoundError(f'playbook {playbook} not found (looked in {PLAYBOOK_DIR} and {REPO_ROOT})')


def playbook_environment(tmp_dir: pathlib.Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKY_ENV_PREFIXES)}
    env.update(
        PATH=f'{ANSIBLE_PLAYBOOK.parent}{os.pathsep}{env.get("PATH", "")}',
        ANSIBLE_CONFIG=str(REPO_ROOT / 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / '.collections'),
        ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
        ANSIBLE_JSON_INDENT='0',
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_LOCAL_TEMP=str(tmp_dir / 'ansible-local'),
        ANSIBLE_REMOTE_TEMP=str(tmp_dir / 'ansible-remote'),
        # kubernetes.core caches API discovery in $TMPDIR/k8srcp-*.json: keep
        # that cache per test so one lab's API never answers for another.
        TMPDIR=str(tmp_dir),
        # A playbook that forgets to pass the lab's kubeconfig or credentials
        # must fail, not fall back to ~/.kube/config or ~/.aws.
        KUBECONFIG=str(tmp_dir / 'no-kubeconfig'),
        AWS_CONFIG_FILE=str(tmp_dir / 'no-aws-config'),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_dir / 'no-aws-credentials'),
    )
    return env


@pytest.fixture
def run_playbook(lab, tmp_path):
    """Run a playbook against this test's lab; see the module docstring.

    Pass the result as the assertion message (``assert result.rc == 0, result``):
    it prints the command and its output.
    """
    tmp_dir = tmp_path / 'ansible'
    tmp_dir.mkdir()
    env = playbook_environment(tmp_dir)
    runs = []

    def run(playbook, *, extra_vars=None, check=False, diff=False, tags=None, limit=None, verbosity=0,
            inventory=INVENTORY, timeout=PLAYBOOK_TIMEOUT) -> PlaybookResult:
        vars_file = tmp_dir / f'extra-vars-{len(runs)}.json'
        vars_file.touch(mode=0o600)
        vars_file.write_text(json.dumps({**lab_extra_vars(lab), **(extra_vars or {})}), encoding='utf-8')
        command = [str(ANSIBLE_PLAYBOOK), '-i', str(inventory), '-e', f'@{vars_file}']
        if check:
            command.append('--check')
        if diff:
            command.append('--diff')
        if tags:
            command += ['--tags', ','.join(tags)]
        if limit:
            command += ['--limit', limit]
        if verbosity:
            command.append('-' + 'v' * verbosity)
        command.append(resolve_playbook(playbook))
        try:
            completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            # TimeoutExpired carries bytes even with text=True
            partial = [stream.decode(errors='replace') if isinstance(stream, bytes) else stream or '' for stream in (exc.stdout, exc.stderr)]
            pytest.fail(f'{" ".join(command)} did not finish within {timeout}s\n' + '\n'.join(partial))
        try:
            output = json.loads(completed.stdout)
        except ValueError:
            output = {}  # a syntax or startup error: there is only text
        result = PlaybookResult(command, completed.returncode, completed.stdout, completed.stderr, output)
        runs.append(result)
        return result

    return run
