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

Every run is verbose (``-vvv`` unless a test passes ``verbosity``), and its
stdout and stderr are scanned for the lab's credentials: the S3 secret key and
access key ID, the Kubernetes API bearer token of the lab's kubeconfig, and
their base64 forms (Secret data is base64). A credential in the output fails
the test that ran the playbook, with the task or line it appeared in and the
credential masked (issue 3, Secret scan). ``scan=False`` is only for tests of
the scanner itself.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import re
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
# -vvv: the verbosity at which Ansible shows the most of what modules were given and returned.
# LONGHORN_DR_TEST_VERBOSITY overrides it for a whole run (e.g. 0 to time the suite without it).
DEFAULT_VERBOSITY = int(os.environ.get('LONGHORN_DR_TEST_VERBOSITY', '3'))
MASK = '********'
# Shorter strings (a base64 core of a tiny value) would match by chance.
MIN_SCAN_LENGTH = 12
# Known disclosures the scan would tolerate, by credential and module (only inside that module's
# ``invocation.module_args``). None: every S3 option that holds a credential is no_log.
TOLERATED_DISCLOSURES = {}

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


def parse_callback_output(stdout: str) -> dict:
    """The ``ansible.posix.json`` document in ``stdout``, or ``{}`` when there is none.

    The callback prints one document when the playbook ends (``v2_playbook_on_stats``), on one line
    with ``ANSIBLE_JSON_INDENT=0``. At ``-v`` and above Ansible's own display lines (config file,
    connection and module transfer messages) share stdout, so the document is found as the last
    JSON object starting a line that has the callback's ``plays`` and ``stats`` keys.
    """
    decoder = json.JSONDecoder()
    starts = [match.start() for match in re.finditer(r'^\{', stdout, re.MULTILINE)]
    for start in reversed(starts):
        try:
            document, _end = decoder.raw_decode(stdout, start)
        except ValueError:
            continue
        if isinstance(document, dict) and 'plays' in document and 'stats' in document:
            return document
    return {}  # a syntax or startup error: there is only text


def base64_forms(value: str) -> list[str]:
    """Strings that appear in any base64 text containing ``value``, whatever its offset.

    Base64 turns 3 bytes into 4 characters, so ``value`` inside a longer encoded blob (a Secret's
    data, a kubeconfig in a ConfigMap) encodes differently for each of the 3 byte offsets; for each,
    the characters that depend on ``value`` alone are kept. Standard and URL-safe alphabets.
    """
    raw = value.encode()
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode().rstrip('=')
        first = -(-offset * 8 // 6)  # the first character without bits of the padding
        last = ((offset + len(raw)) * 8) // 6  # characters before this one are complete
        core = encoded[first:last]
        if len(core) >= MIN_SCAN_LENGTH:
            forms.add(core)
            forms.add(core.replace('+', '-').replace('/', '_'))
    return sorted(forms)


def lab_credentials(lab) -> dict:
    """The lab's credential values by a name to report them by (never the value)."""
    values = {'lab.secret_key': lab.secret_key, 'lab.access_key': lab.access_key}
    token = getattr(lab, 'token', None)
    if token:
        values['lab.token (Kubernetes bearer token of the lab kubeconfig)'] = token
    return {name: value for name, value in values.items() if value}


def credential_patterns(credentials: dict) -> list[tuple[str, str]]:
    """(label, text to look for): each credential as is and in its base64 forms."""
    patterns = []
    for name, value in credentials.items():
        patterns.append((name, value))
        patterns.extend((name + ' (base64)', form) for form in base64_forms(value))
    return patterns


def _mask(text: str, secrets) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _task_context(output: dict, needle: str, tolerated_actions=()) -> str | None:
    """Which task result of the callback document holds ``needle`` (outside tolerated module arguments)."""
    for play in output.get('plays', []):
        for task in play.get('tasks', []):
            for host, result in task.get('hosts', {}).items():
                count = json.dumps(result).count(needle)
                if result.get('action') in tolerated_actions:
                    count -= sum(json.dumps(args).count(needle) for args in _module_args(result))
                if count > 0:
                    return 'task %r (%s) on %s' % (task['task']['name'], task['task'].get('path', '?'), host)
    return None


def _line_context(text: str, index: int, secrets, width: int = 120) -> str:
    line_start = text.rfind('\n', 0, index) + 1
    line_end = text.find('\n', index)
    line_end = len(text) if line_end < 0 else line_end
    line_number = text.count('\n', 0, index) + 1
    excerpt = text[max(line_start, index - width):min(line_end, index + width)]
    # The nearest module transfer or task path above the hit says which step printed it.
    above = [line for line in text[:line_start].splitlines()
             if 'AnsiballZ_' in line or line.startswith(('TASK [', 'task path:'))]
    where = ' after %r' % _mask(above[-1][-160:], secrets) if above else ''
    return 'line %d%s: ...%s...' % (line_number, where, _mask(excerpt, secrets))


def _module_args(result: dict) -> list[dict]:
    """The ``invocation.module_args`` of a task result and of its loop items."""
    found = [(result.get('invocation') or {}).get('module_args') or {}]
    found += [(item.get('invocation') or {}).get('module_args') or {} for item in result.get('results') or [] if isinstance(item, dict)]
    return found


def _tolerated_count(output: dict, needle: str, actions) -> int:
    """Occurrences of ``needle`` in the module arguments of the results of ``actions``."""
    return sum(json.dumps(args).count(needle)
               for play in output.get('plays', []) for task in play.get('tasks', []) for result in task.get('hosts', {}).values()
               if result.get('action') in actions for args in _module_args(result))


def scan_for_credentials(stdout: str, stderr: str, credentials: dict, output: dict | None = None,
                         tolerated: dict | None = None) -> list[str]:
    """One masked finding per credential form that appears in the output; [] when none does.

    ``credentials`` maps a name to report to the value. A finding names the credential, the stream,
    and the task (from the parsed callback ``output``) or the line it appears in, never the value.
    ``tolerated`` (default :data:`TOLERATED_DISCLOSURES`; ``{}`` for none) maps a credential name to
    the modules whose ``invocation.module_args`` in stdout may hold it.
    """
    tolerated = TOLERATED_DISCLOSURES if tolerated is None else tolerated
    patterns = credential_patterns(credentials)
    secrets = [text for _label, text in patterns]
    findings = []
    for label, needle in patterns:
        for stream, text in (('stdout', stdout or ''), ('stderr', stderr or '')):
            count = text.count(needle)
            if stream == 'stdout' and label in tolerated:
                count -= _tolerated_count(output or {}, needle, tolerated[label])
            if count <= 0:
                continue
            index = text.find(needle)
            context = ((_task_context(output or {}, needle, tolerated.get(label, ())) if stream == 'stdout' else None)
                       or _line_context(text, index, secrets))
            findings.append('%s appears %d time(s) in %s, first in %s' % (label, count, stream, context))
    return findings


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
    if re.fullmatch(r'\w+\.\w+\.\w+', str(playbook)):
        return str(playbook)  # e.g. homelab.longhorn_dr.restore; ansible-playbook resolves it
    raise FileNotFoundError(f'playbook {playbook} not found (looked in {PLAYBOOK_DIR} and {REPO_ROOT})')


def playbook_environment(tmp_dir: pathlib.Path) -> dict:
    """The developer's environment without settings that could leak in, plus the harness's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKY_ENV_PREFIXES)}
    env.update(
        PATH=f'{ANSIBLE_PLAYBOOK.parent}{os.pathsep}{env.get("PATH", "")}',
        ANSIBLE_CONFIG=str(REPO_ROOT / 'ansible.cfg'),
        ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / '.collections'),
        ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
        ANSIBLE_JSON_INDENT='0',
        # set_stats data in the document's custom_stats / global_custom_stats (what AWX shows as artifacts).
        ANSIBLE_SHOW_CUSTOM_STATS='1',
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
    it prints the command and its output. ``env`` adds environment variables
    (e.g. ``AWS_*`` as AWX sets them) after the harness removed the developer's.
    ``verbosity`` defaults to 3 (``-vvv``); every run's output is scanned for the
    lab's credentials unless ``scan=False``.
    """
    tmp_dir = tmp_path / 'ansible'
    tmp_dir.mkdir()
    base_env = playbook_environment(tmp_dir)
    runs = []

    def run(playbook, *, extra_vars=None, check=False, diff=False, tags=None, limit=None, verbosity=DEFAULT_VERBOSITY,
            inventory=INVENTORY, timeout=PLAYBOOK_TIMEOUT, env=None, scan=True) -> PlaybookResult:
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
            completed = subprocess.run(command, cwd=REPO_ROOT, env={**base_env, **(env or {})}, capture_output=True, text=True,
                                       timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            # TimeoutExpired carries bytes even with text=True
            partial = [stream.decode(errors='replace') if isinstance(stream, bytes) else stream or '' for stream in (exc.stdout, exc.stderr)]
            if scan:
                partial = [_mask(text, [needle for _label, needle in credential_patterns(lab_credentials(lab))]) for text in partial]
            pytest.fail(f'{" ".join(command)} did not finish within {timeout}s\n' + '\n'.join(partial))
        output = parse_callback_output(completed.stdout)
        result = PlaybookResult(command, completed.returncode, completed.stdout, completed.stderr, output)
        runs.append(result)
        if scan:
            leaks = scan_for_credentials(completed.stdout, completed.stderr, lab_credentials(lab), output)
            if leaks:
                pytest.fail('a credential of the lab appears in the output of %s (rc=%d):\n  %s'
                            % (playbook, completed.returncode, '\n  '.join(leaks)), pytrace=False)
        return result

    return run
