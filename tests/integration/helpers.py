# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Small helpers the integration tests share."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time


def wait_until(predicate, what='condition', timeout=120):
    """Poll ``predicate`` every half second until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f'timed out after {timeout}s waiting for {what}')


def volume_file(lab, volume, name='data.txt'):
    """Text of a file on a lab volume (as setup_backups writes it), or None when it is not there."""
    path = os.path.join(lab.ctx.volume_data_dir(volume), name)
    if not os.path.exists(path):
        return None
    with open(path, encoding='utf-8') as handle:
        return handle.read()


REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
MIN_VENV_BIN = REPO_ROOT / '.venv-min' / 'bin'

# What a developer's checkout holds besides the collection: galaxy.yml's build_ignore must keep it out.
DEVELOPER_LEFTOVERS = (
    '.venv/bin/python3', '.venv-min/pyvenv.cfg', '.collections/ansible_collections/kubernetes/core/MANIFEST.json',
    '.build/sanity/x.txt', '.cache/x', '.pytest_cache/v/cache/lastfailed', 'tests/output/junit.xml', '.lab/lab.json',
    'drill.lab-state/lab.json', 'plugins/modules/__pycache__/longhorn_backup_info.cpython-311.pyc', 'bench/results/run.json',
    'collections/ansible_collections/homelab/longhorn_dr/galaxy.yml', 'homelab-longhorn_dr-0.9.0.tar.gz', '.ansible/tmp/x',
    'cluster-state/manifest.json',
)


def build_collection(workdir, leftovers=DEVELOPER_LEFTOVERS):
    """Build the tarball as ``make build`` does, from a copy of the checkout's files plus ``leftovers``; returns its path."""
    source = pathlib.Path(workdir) / 'source'
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=REPO_ROOT,
                            check=True, capture_output=True).stdout.decode().split('\0')
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    for name in leftovers:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text('developer leftover\n', encoding='utf-8')
    dist = pathlib.Path(workdir) / 'dist'
    run_tool([VENV_BIN / 'ansible-galaxy', 'collection', 'build', '--output-path', dist, source])
    tarballs = list(dist.glob('homelab-longhorn_dr-*.tar.gz'))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


def install_collection(tarball, collections_path):
    """Install the tarball into a clean collections path, with kubernetes.core (and ansible.posix for the tests'
    JSON output) copied beside it from .collections, standing in for Galaxy, which is out of reach here."""
    collections_path = pathlib.Path(collections_path)
    run_tool([VENV_BIN / 'ansible-galaxy', 'collection', 'install', '--no-deps', '-p', collections_path, tarball],
             env=clean_ansible_environment(collections_path))
    for fqcn in ('kubernetes.core', 'ansible.posix'):
        namespace, name = fqcn.split('.')
        shutil.copytree(REPO_ROOT / '.collections' / 'ansible_collections' / namespace / name,
                        collections_path / 'ansible_collections' / namespace / name)
    return collections_path / 'ansible_collections' / 'homelab' / 'longhorn_dr'


def clean_ansible_environment(collections_path, home=None):
    """An environment that sees only ``collections_path``: no ansible.cfg, no ~/.ansible, no collection on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'K8S_AUTH_', 'AWS_', 'KUBECONFIG'))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false', ANSIBLE_NOCOLOR='1')
    if home is not None:
        env['HOME'] = str(home)
    return env


def run_tool(command, **kwargs):
    """Run a command; on failure, fail the test with its output."""
    completed = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False, **kwargs)
    assert completed.returncode == 0, '%s failed (%d):\n%s\n%s' % (command, completed.returncode, completed.stdout[-3000:], completed.stderr[-3000:])
    return completed
