# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make ee-context` (ansible-builder create, offline) gives a build context that installs this collection, and
ansible-builder's own introspection, run on the collection as the build installs it, finds the collection's Python
and system requirements and nothing of the test tooling."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

from tests.integration.helpers import REPO_ROOT, VENV_BIN, clean_ansible_environment, run_tool

pytestmark = pytest.mark.integration


def requirement_names(path):
    names = set()
    for line in path.read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            names.add(re.split(r'[<>=!~\[; ]', line, maxsplit=1)[0].lower().replace('_', '-'))
    return names


def test_ee_files_list_runtime_dependencies_only():
    runtime = requirement_names(REPO_ROOT / 'requirements' / 'runtime.txt')
    test_only = requirement_names(REPO_ROOT / 'requirements' / 'test.txt') - runtime
    ee = requirement_names(REPO_ROOT / 'meta' / 'ee-requirements.txt')
    assert ee and ee <= runtime, ee - runtime
    assert 'ansible-core' not in ee  # the EE definition brings ansible-core
    for name in ('meta/ee-requirements.txt', 'meta/ee-bindep.txt', 'extensions/ee/execution-environment.yml', 'extensions/ee/requirements.yml'):
        lines = (REPO_ROOT / name).read_text(encoding='utf-8').lower().splitlines()
        text = '\n'.join(line.split('#', 1)[0] for line in lines)
        leaked = [tool for tool in test_only if re.search(r'(^|[^a-z0-9-])%s([^a-z0-9-]|$)' % re.escape(tool), text)]
        assert not leaked, (name, leaked)
    bindep = run_tool([VENV_BIN / 'bindep', '--file', REPO_ROOT / 'meta' / 'ee-bindep.txt', '--list_all', 'newline'], cwd=REPO_ROOT)
    assert bindep.stdout.split()


def test_ee_context_installs_the_collection_and_its_requirements(tmp_path):
    ee_dir = tmp_path / 'ee'
    make = subprocess.run(['make', '--no-print-directory', 'ee-context', 'EE_DIR=%s' % ee_dir], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
    assert make.returncode == 0, make.stdout[-3000:] + make.stderr[-3000:]
    context = ee_dir / 'context'
    containerfile = (context / 'Containerfile').read_text(encoding='utf-8')
    assert 'ansible-galaxy collection install' in containerfile and 'introspect.py introspect' in containerfile
    assert 'ansible-core>=2.19' in containerfile and 'python3.11' in containerfile

    # The galaxy stage: requirements.yml names the tarball shipped in the context, and kubernetes.core.
    requirements = yaml.safe_load((context / '_build' / 'requirements.yml').read_text(encoding='utf-8'))['collections']
    local = [entry for entry in requirements if entry.get('type') == 'file']
    assert [entry['name'] for entry in requirements if entry.get('type') != 'file'] == ['kubernetes.core']
    assert len(local) == 1
    tarball = context / '_build' / local[0]['name']
    with tarfile.open(tarball) as archive:
        manifest = yaml.safe_load(archive.extractfile('MANIFEST.json'))
    assert manifest['collection_info']['name'] == 'longhorn_dr'

    # Stand-in for that stage, offline: install the file entries as the build does (cwd /build = _build),
    # kubernetes.core from .collections instead of Galaxy.
    build = tmp_path / 'build'
    shutil.copytree(context / '_build', build)
    installed = tmp_path / 'usr-share-ansible-collections'
    offline = build / 'requirements-offline.yml'
    offline.write_text(yaml.safe_dump({'collections': local}), encoding='utf-8')
    run_tool([VENV_BIN / 'ansible-galaxy', 'collection', 'install', '--no-deps', '-r', offline, '--collections-path', installed],
             cwd=build, env=clean_ansible_environment(installed))
    shutil.copytree(REPO_ROOT / '.collections' / 'ansible_collections' / 'kubernetes' / 'core',
                    installed / 'ansible_collections' / 'kubernetes' / 'core')

    # The builder stage: ansible-builder's introspection from the context decides what the image gets.
    pip_out, bindep_out = tmp_path / 'requirements.txt', tmp_path / 'bindep.txt'
    run_tool([VENV_BIN / 'python', context / '_build' / 'scripts' / 'introspect.py', 'introspect', installed,
              '--write-pip', pip_out, '--write-bindep', bindep_out])
    pip_lines = pip_out.read_text(encoding='utf-8').splitlines()
    # ansible-builder drops what every EE already has (PyYAML comes with ansible-core).
    spec = importlib.util.spec_from_file_location('ee_introspect', context / '_build' / 'scripts' / 'introspect.py')
    introspect = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(introspect)
    for line in (REPO_ROOT / 'meta' / 'ee-requirements.txt').read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if line and requirement_names_line(line) not in introspect.EXCLUDE_REQUIREMENTS:
            assert any(got.startswith(line) and 'homelab.longhorn_dr' in got for got in pip_lines), (line, pip_lines)
    bindep_lines = bindep_out.read_text(encoding='utf-8').splitlines()
    for line in (REPO_ROOT / 'meta' / 'ee-bindep.txt').read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            assert any(got.startswith(line) and 'homelab.longhorn_dr' in got for got in bindep_lines), (line, bindep_lines)
    assert any('kubernetes.core' in got for got in pip_lines), pip_lines
    test_only = requirement_names(REPO_ROOT / 'requirements' / 'test.txt') - requirement_names(REPO_ROOT / 'requirements' / 'runtime.txt')
    assert not [got for got in pip_lines if requirement_names_line(got) in test_only], pip_lines


def requirement_names_line(line):
    return re.split(r'[<>=!~\[; #]', line.strip(), maxsplit=1)[0].lower().replace('_', '-')
