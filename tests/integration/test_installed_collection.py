# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The release as users get it: the tarball leaves developer files out, installs into a clean collections path,
documents every plugin from there, and runs the whole drill from the installed copy with the oldest ansible-core
and libraries the collection claims (make min-venv), connected the way AWX connects (bearer token, S3 keys in the
environment, the cluster-state export read back from the bucket), without the checkout, its ansible.cfg or make."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import yaml

from demo import drill
from tests.integration.helpers import (DEVELOPER_LEFTOVERS, MIN_VENV_BIN, REPO_ROOT, VENV_BIN, build_collection,
                                       clean_ansible_environment, install_collection, run_tool)

pytestmark = pytest.mark.integration

MODULES = sorted(p.stem for p in (REPO_ROOT / 'plugins' / 'modules').glob('*.py') if p.stem != '__init__')
FILTERS = sorted(p.stem for p in (REPO_ROOT / 'plugins' / 'filter').glob('*.py') if p.stem != '__init__')
# What the collection is: every file under these must ship.
SHIPPED = ('plugins', 'roles', 'playbooks', 'meta', 'extensions/awx', 'extensions/ee', 'changelogs')
# Developer tooling that must not ship (besides DEVELOPER_LEFTOVERS).
NOT_SHIPPED = ('demo/', 'bench/', 'scripts/', 'requirements/', 'Makefile', 'ansible.cfg', '.ci/')


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    return build_collection(tmp_path_factory.mktemp('build'))


def test_tarball_holds_the_collection_and_no_developer_files(tarball):
    with tarfile.open(tarball) as archive:
        names = {member.name.rstrip('/') for member in archive.getmembers()}
        manifest = json.load(archive.extractfile('MANIFEST.json'))
    tracked = run_tool(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=REPO_ROOT).stdout.split()
    for leftover in DEVELOPER_LEFTOVERS:
        # The leftover's outermost directory that holds no collection file must be gone as a whole.
        parts = leftover.split('/')
        root = next('/'.join(parts[:i]) for i in range(1, len(parts) + 1)
                    if not any(t == '/'.join(parts[:i]) or t.startswith('/'.join(parts[:i]) + '/') for t in tracked))
        assert not [n for n in names if n == root or n.startswith(root + '/')], leftover
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    assert not [n for n in names if n.startswith(NOT_SHIPPED) or n in NOT_SHIPPED], sorted(names)
    listed = run_tool(['git', 'ls-files', '--cached', '--others', '--exclude-standard', *SHIPPED], cwd=REPO_ROOT).stdout.split()
    missing = [name for name in listed if (REPO_ROOT / name).is_file() and name not in names]
    assert not missing, missing
    for name in ('README.md', 'COPYING', 'CHANGELOG.rst', 'meta/runtime.yml', 'meta/execution-environment.yml',
                 'meta/ee-requirements.txt', 'meta/ee-bindep.txt', 'FILES.json'):
        assert name in names, name
    galaxy = yaml.safe_load((REPO_ROOT / 'galaxy.yml').read_text(encoding='utf-8'))
    info = manifest['collection_info']
    assert (info['namespace'], info['name'], info['version']) == ('homelab', 'longhorn_dr', galaxy['version'])
    assert info['dependencies'] == galaxy['dependencies']
    assert info['license'] == ['GPL-3.0-or-later']


def test_installed_copy_documents_every_plugin(tarball, tmp_path):
    collections_path = tmp_path / 'collections'
    installed = install_collection(tarball, collections_path)
    env = clean_ansible_environment(collections_path, home=tmp_path)
    listing = run_tool([VENV_BIN / 'ansible-galaxy', 'collection', 'list', 'homelab.longhorn_dr'], env=env, cwd=tmp_path).stdout
    locations = [line[2:].strip() for line in listing.splitlines() if line.startswith('# ')]
    assert locations == [str(collections_path / 'ansible_collections')], listing
    assert installed.joinpath('MANIFEST.json').is_file() and not installed.is_symlink()

    names = ['homelab.longhorn_dr.' + name for name in MODULES]
    docs = json.loads(run_tool([VENV_BIN / 'ansible-doc', '-t', 'module', '--json', *names], env=env, cwd=tmp_path).stdout)
    assert sorted(docs) == sorted(names)
    for name, doc in docs.items():
        documentation = doc['doc']
        assert documentation['short_description'] and documentation['options'] and documentation.get('attributes'), name
        assert doc['examples'] and name in doc['examples'], name
        assert doc['return'], name
        assert all('sample' in value or value.get('type') in ('dict', 'list') for value in doc['return'].values()), name
    # The text form is what users read; ansible-doc prints errors for a broken doc instead of failing.
    text = run_tool([VENV_BIN / 'ansible-doc', '-t', 'module', *names], env=env, cwd=tmp_path)
    assert 'ERROR' not in text.stderr and 'WARNING' not in text.stderr, text.stderr
    for name in names:
        assert '> MODULE %s' % name in text.stdout, name

    listed = json.loads(run_tool([VENV_BIN / 'ansible-doc', '-t', 'filter', '-l', '--json', 'homelab.longhorn_dr'], env=env, cwd=tmp_path).stdout)
    assert {'homelab.longhorn_dr.' + name for name in FILTERS} <= set(listed), listed
    filter_docs = json.loads(run_tool([VENV_BIN / 'ansible-doc', '-t', 'filter', '--json', *listed], env=env, cwd=tmp_path).stdout)
    assert sorted(filter_docs) == sorted(listed)
    for name, doc in filter_docs.items():
        # Its own documentation, not that of another filter in the same file.
        assert 'homelab.longhorn_dr.' + doc['doc']['name'] == name, (name, doc['doc']['name'])
        assert doc['doc']['short_description'] and doc['examples'] and doc['return'], name


def test_drill_from_the_installed_copy_with_minimum_versions(tarball, tmp_path):
    assert (MIN_VENV_BIN / 'ansible-playbook').exists(), 'no %s: run `make min-venv` (make pytest does)' % MIN_VENV_BIN.parent
    collections_path = install_collection(tarball, tmp_path / 'collections').parents[2]
    versions = run_tool([MIN_VENV_BIN / 'python', '-m', 'pip', 'freeze']).stdout
    for pin in run_tool([VENV_BIN / 'python', REPO_ROOT / 'scripts' / 'min_requirements.py'], cwd=REPO_ROOT).stdout.split():
        assert pin.lower() in versions.lower(), (pin, versions)

    installation = drill.Installation(ansible_playbook=MIN_VENV_BIN / 'ansible-playbook', python=str(MIN_VENV_BIN / 'python'),
                                      collections_path=collections_path, ansible_config=None, kubernetes_auth='token',
                                      cluster_state_from_bucket=True)
    story = io.StringIO()
    workdir = tmp_path / 'drill'
    run = drill.Drill(workdir, 'volumes', drill.Story(out=story), installation=installation)
    try:
        result = run.run()
        secrets = [run.lab.secret_key, run.token_environment()['K8S_AUTH_API_KEY']]
    finally:
        run.stop()
    # The drill's volumes method runs here only (test_demo_drill runs system_backup).
    assert result['restore']['method'] == 'volumes'
    assert result['restore']['failures'] == [] and len(result['restore']['volumes']) == 3
    assert sorted(result['claims']) == ['monitoring/metrics', 'shop/data-db-0', 'shop/uploads']
    verify = result['verify']
    assert verify['summary'].startswith('Restore verified') and ' 0 failure(s)' in verify['summary'], verify
    # The baselines were compared, read from the bucket: no local export was left to read.
    assert not (workdir / 'cluster-state').exists()
    assert 'baseline' in json.dumps(verify), verify
    text = story.getvalue()
    for log in sorted((workdir / 'logs').iterdir()):
        content = log.read_text(encoding='utf-8')
        # Every collection playbook ran from the installed copy, none from this checkout.
        assert str(REPO_ROOT / 'playbooks') not in content and str(REPO_ROOT / 'roles') not in content, log.name
        for secret in secrets:
            assert secret not in content, log.name
    for secret in secrets:
        assert secret not in text
