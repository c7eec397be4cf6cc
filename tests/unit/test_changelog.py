# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The changelog: fragments and changelogs/changelog.yaml are valid, the released version is galaxy.yml's, and
CHANGELOG.rst is what antsibull-changelog generates from them (nobody edited it by hand or forgot to regenerate)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ANTSIBULL_CHANGELOG = pathlib.Path(sys.executable).parent / 'antsibull-changelog'


def run(*args, cwd):
    completed = subprocess.run([str(ANTSIBULL_CHANGELOG), *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, (args, completed.stdout, completed.stderr)
    return completed.stdout


def test_fragments_and_changelog_yaml_are_valid():
    run('lint', cwd=REPO_ROOT)
    run('lint-changelog-yaml', 'changelogs/changelog.yaml', cwd=REPO_ROOT)


def test_released_version_is_galaxy_version():
    releases = yaml.safe_load((REPO_ROOT / 'changelogs' / 'changelog.yaml').read_text(encoding='utf-8'))['releases']
    galaxy = yaml.safe_load((REPO_ROOT / 'galaxy.yml').read_text(encoding='utf-8'))
    assert galaxy['version'] in releases, sorted(releases)


def test_changelog_rst_is_generated(tmp_path):
    copy = tmp_path / 'collection'
    for name in ('galaxy.yml', 'changelogs/config.yaml', 'changelogs/changelog.yaml', 'CHANGELOG.rst'):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, copy / name)
    # The plugin list is part of changelog.yaml since the release: generating needs no plugin scan.
    run('generate', cwd=copy)
    assert (copy / 'CHANGELOG.rst').read_text(encoding='utf-8') == (REPO_ROOT / 'CHANGELOG.rst').read_text(encoding='utf-8')
