# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Vendor collections from the pinned ``ansible`` wheel into a collections path.

Galaxy is not reachable from CI, PyPI is: the ``ansible`` community package
ships every collection it includes under ``ansible_collections/``. We download
that wheel (hash-pinned, without dependencies) and extract only the collections
we need, then check their MANIFEST.json versions.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile


def download_wheel(requirements_file: pathlib.Path, download_dir: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [
            sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary', ':all:',
            '--require-hashes', '-r', str(requirements_file), '-d', str(download_dir),
        ],
        check=True,
    )
    wheels = sorted(download_dir.glob('ansible-*.whl'))
    if len(wheels) != 1:
        raise SystemExit(f'expected exactly one ansible wheel in {download_dir}, found {wheels}')
    return wheels[0]


def extract_collection(wheel: pathlib.Path, fqcn: str, expected_version: str, destination: pathlib.Path) -> None:
    namespace, name = fqcn.split('.')
    prefix = f'ansible_collections/{namespace}/{name}/'
    target = destination / 'ansible_collections' / namespace / name
    staging = target.with_name(f'.{name}.partial')
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [member for member in archive.namelist() if member.startswith(prefix) and not member.endswith('/')]
        if not members:
            raise SystemExit(f'{wheel.name} does not contain {fqcn}')
        for member in members:
            path = staging / member[len(prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(member))
    manifest = json.loads((staging / 'MANIFEST.json').read_text(encoding='utf-8'))
    found_version = manifest['collection_info']['version']
    if found_version != expected_version:
        shutil.rmtree(staging)
        raise SystemExit(f'{fqcn}: {wheel.name} carries {found_version}, expected {expected_version}')
    # Swap in the complete tree only, so an interrupted run never leaves a half collection.
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    print(f'vendored {fqcn} {found_version} from {wheel.name} into {target}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--requirements', type=pathlib.Path, required=True, help='hash-pinned requirements file naming the ansible wheel')
    parser.add_argument('--dest', type=pathlib.Path, required=True, help='collections path (its ansible_collections/ is created)')
    parser.add_argument('--collection', action='append', required=True, metavar='NS.NAME==VERSION')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix='vendor-collections-') as download_dir:
        wheel = download_wheel(args.requirements, pathlib.Path(download_dir))
        for spec in args.collection:
            fqcn, version = spec.split('==')
            extract_collection(wheel, fqcn, version, args.dest)


if __name__ == '__main__':
    main()
