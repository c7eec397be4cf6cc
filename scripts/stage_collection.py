# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stage a copy of this collection for ansible-test.

ansible-test needs the collection at ``.../ansible_collections/<ns>/<name>``
and only looks at files git knows about. This copies the files git would show
(tracked plus untracked-but-not-ignored, as ansible-test itself lists them) to
``<dest>/ansible_collections/homelab/longhorn_dr``, makes that copy a git
repository with those files staged, and puts the vendored dependency
collections beside it.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
NAMESPACE, NAME = 'homelab', 'longhorn_dr'
# ansible-test keeps its results and the --venv environment here; keeping it
# between runs saves re-creating that environment.
KEEP = 'tests/output'


def git(*args: str, cwd: pathlib.Path) -> str:
    return subprocess.run(['git', *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def visible_files() -> list[str]:
    listing = git('ls-files', '-z', '--cached', '--others', '--exclude-standard', cwd=REPO_ROOT)
    names = sorted({name for name in listing.split('\0') if name})
    # --cached still lists files deleted from the work tree
    return [name for name in names if (REPO_ROOT / name).is_file()]


def clear(copy: pathlib.Path) -> None:
    for entry in copy.iterdir():
        if entry.name == 'tests':
            for sub in entry.iterdir():
                if sub.as_posix() != (copy / KEEP).as_posix():
                    remove(sub)
        else:
            remove(entry)


def remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--dest', type=pathlib.Path, required=True, help='directory that receives ansible_collections/')
    parser.add_argument('--with-collections', type=pathlib.Path, required=True,
                        help='collections path whose other collections are copied beside ours')
    args = parser.parse_args()

    root = args.dest.resolve() / 'ansible_collections'
    copy = root / NAMESPACE / NAME
    copy.mkdir(parents=True, exist_ok=True)
    clear(copy)

    files = visible_files()
    for name in files:
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)

    git('init', '--quiet', cwd=copy)
    git('add', '--all', cwd=copy)

    source_root = args.with_collections.resolve() / 'ansible_collections'
    for namespace_dir in sorted(source_root.iterdir()):
        for collection_dir in sorted(namespace_dir.iterdir()):
            if collection_dir.name.startswith('.') or (namespace_dir.name, collection_dir.name) == (NAMESPACE, NAME):
                continue
            target = root / namespace_dir.name / collection_dir.name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(collection_dir, target)

    print(f'staged {len(files)} files in {copy}')


if __name__ == '__main__':
    main()
