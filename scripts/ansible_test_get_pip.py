# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for the get-pip.py script that ansible-test downloads.

homelab.longhorn_dr get-pip stand-in (scripts/seed_ansible_test_pip.py looks for this line).

ansible-test bootstraps pip into each virtual environment it creates by running
``~/.ansible/test/cache/get_pip_<version>.py`` (downloaded from
ci-files.testing.ansible.com when missing; see ``bootstrap()`` in
ansible_test/_util/target/setup/requirements.py). That host is not reachable
here, so scripts/seed_ansible_test_pip.py puts this file at that path instead,
with the pip wheel beside it.

It is run with get-pip's command line, e.g.
``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``, and does
what get-pip does: run pip from its wheel to install that wheel. Without the
wheel it falls back to ensurepip plus the package index.
"""

from __future__ import annotations

import os
import subprocess
import sys

# get-pip options that pip itself does not know
GET_PIP_ONLY_OPTIONS = {'--no-setuptools', '--no-wheel', '--no-pip'}


def main() -> None:
    options = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    requested = [arg for arg in options if not arg.startswith('-')]
    flags = [arg for arg in options if arg.startswith('-')]
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = {}
    for requirement in requested:
        name, _sep, version = requirement.partition('==')
        wheel = os.path.join(here, f'{name}-{version}-py3-none-any.whl')
        if os.path.isfile(wheel):
            wheels[requirement] = wheel
    pip_wheel = next((wheel for requirement, wheel in wheels.items() if requirement.startswith('pip==')), None)
    if pip_wheel and len(wheels) == len(requested):
        # A wheel is importable: pip runs from its own wheel, as in get-pip.
        subprocess.run([sys.executable, os.path.join(pip_wheel, 'pip'), 'install', '--quiet', '--no-index', *flags, *wheels.values()], check=True)
        return
    subprocess.run([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', *options], check=True)
    if '--no-setuptools' in sys.argv:
        # ensurepip (Python < 3.12) also installs setuptools; get-pip would not have.
        subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '--quiet', '--yes', 'setuptools'], check=True)


if __name__ == '__main__':
    main()
