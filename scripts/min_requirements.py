# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print pip requirements that pin every runtime dependency to the oldest version the collection claims.

The minimums come from meta/ee-requirements.txt (``name>=version``) and ansible-core's from
``requires_ansible`` in meta/runtime.yml. ``make min-venv`` installs them, and the installed-collection
test runs the collection with them, so a claimed minimum is a tested one.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import yaml

LOWER_BOUND = re.compile(r'^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)$')


def minimums(requirements: pathlib.Path) -> list[str]:
    pins = []
    for number, raw in enumerate(requirements.read_text(encoding='utf-8').splitlines(), start=1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        match = LOWER_BOUND.match(line)
        if not match:
            raise SystemExit(f'{requirements}:{number}: {line!r} is not "name>=version"; every runtime dependency needs a tested minimum')
        pins.append(f'{match.group(1)}=={match.group(2)}')
    return pins


def ansible_core_minimum(runtime: pathlib.Path) -> str:
    spec = str(yaml.safe_load(runtime.read_text(encoding='utf-8')).get('requires_ansible', ''))
    match = re.match(r'^>=\s*([0-9.]+)', spec)
    if not match:
        raise SystemExit(f'{runtime}: requires_ansible {spec!r} has no ">=x.y.z" lower bound')
    return f'ansible-core=={match.group(1)}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--collection-root', type=pathlib.Path, default=pathlib.Path('.'))
    args = parser.parse_args()
    root = args.collection_root
    lines = [ansible_core_minimum(root / 'meta' / 'runtime.yml')] + minimums(root / 'meta' / 'ee-requirements.txt')
    sys.stdout.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
