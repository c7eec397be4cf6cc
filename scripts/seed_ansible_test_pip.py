# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Put scripts/ansible_test_get_pip.py where ansible-test looks for get-pip.

ansible-test's own error message suggests saving the bootstrap script at this
cache path by hand; this does that, and downloads the pip wheel the stand-in
installs from. A real get-pip already there is left alone; an older copy of
our stand-in is refreshed. The path and pip version are read from the
installed ansible-test, so this follows its upgrades.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._util.target.setup import requirements as target_requirements

STAND_IN = pathlib.Path(__file__).with_name('ansible_test_get_pip.py')
MARKER = 'homelab.longhorn_dr get-pip stand-in'


def cache_path_template() -> str:
    source = pathlib.Path(target_requirements.__file__).read_text(encoding='utf-8')
    match = re.search(r"cache_path = os\.path\.expanduser\('([^']*get_pip_%s\.py)'", source)
    if not match:
        raise SystemExit(f'cannot find the get-pip cache path in {target_requirements.__file__}; ansible-test changed, update {__file__}')
    return match.group(1)


def main() -> None:
    pip_version = get_venv_packages(types.SimpleNamespace(version='3.11'))['pip']
    cache_path = pathlib.Path(os.path.expanduser(cache_path_template() % pip_version.replace('.', '_')))
    if cache_path.exists() and MARKER not in cache_path.read_text(encoding='utf-8', errors='replace'):
        print(f'ansible-test pip {pip_version} bootstrap script already present: {cache_path}')
        return
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    wheel = cache_path.parent / f'pip-{pip_version}-py3-none-any.whl'
    if not wheel.exists():
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary', ':all:',
                        f'pip=={pip_version}', '-d', str(cache_path.parent)], check=True)
    stand_in = STAND_IN.read_bytes()
    if not cache_path.exists() or cache_path.read_bytes() != stand_in:
        cache_path.write_bytes(stand_in)
        print(f'seeded ansible-test pip {pip_version} bootstrap script: {cache_path}')


if __name__ == '__main__':
    main()
