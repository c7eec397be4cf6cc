# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fetch kubernetes.core's own integration targets from the hash-pinned ``ansible`` sdist.

The ``ansible`` wheel (what scripts/vendor_collections.py takes kubernetes.core from)
leaves out the collections' ``tests/``; the sdist keeps them.  This downloads the sdist
pinned in requirements/peer-sources.txt with pip (``--require-hashes``, no dependencies,
no wheel) into a cache outside the checkout, checks its sha256 again, and extracts
``ansible_collections/kubernetes/core/tests/integration/`` (every target, the helper
roles ``setup_*``/``remove_namespace`` they depend on, their defaults, files, templates
and ``library/`` modules) plus the collection's MANIFEST.json.  It also extracts the whole
community.general from the same sdist: a test dependency of the targets (k8s_full calls
``community.general.filesize``) that the lab does not vendor.

Idempotent: a cached sdist with the pinned hash is not downloaded again and a complete
extraction (its marker names the sdist's hash) is not redone.  Prints the targets directory.

    python tests/peer/fetch_kubernetes_core_targets.py [--find-links DIR] [--print-path]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIREMENTS = os.path.join(REPO_ROOT, "requirements", "peer-sources.txt")
COLLECTION = ("kubernetes", "core")
# The release the vendored copy in .collections carries (Makefile's vendor step): targets and modules must match.
EXPECTED_COLLECTION_VERSION = "6.2.0"
MARKER = ".extracted-from"
# Collections the targets use besides kubernetes.core, extracted whole from the same sdist.
TEST_DEPENDENCIES = (("community", "general"),)


class FetchError(Exception):
    pass


def cache_dir():
    explicit = os.environ.get("LAB_PEER_CACHE")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "longhorn-dr-lab", "peer")


def pinned(requirements=REQUIREMENTS):
    """(name, version, sha256) of the one requirement in the file."""
    with open(requirements, encoding="utf-8") as handle:
        lines = [line.split("#", 1)[0].strip() for line in handle]
    lines = [line for line in lines if line]
    if len(lines) != 1:
        raise FetchError("%s must hold exactly one requirement, found %d" % (requirements, len(lines)))
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})", lines[0])
    if not match:
        raise FetchError("%s: expected 'name==version --hash=sha256:<hex>', got %r" % (requirements, lines[0]))
    return match.group(1), match.group(2), match.group(3)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(cache, find_links=None, no_index=False, out=sys.stdout):
    """The pinned sdist in ``<cache>/dist``, downloaded by pip only when it is missing or altered."""
    name, version, sha256 = pinned()
    dist = os.path.join(cache, "dist")
    sdist = os.path.join(dist, "%s-%s.tar.gz" % (name, version))
    if os.path.isfile(sdist) and sha256_of(sdist) == sha256:
        return sdist, sha256
    os.makedirs(dist, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
            "--require-hashes", "-r", REQUIREMENTS, "-d", dist]
    if find_links:
        argv += ["--find-links", find_links]
    if no_index:
        argv.append("--no-index")
    print("peer sources: downloading %s==%s (sdist, ~52 MB; pip prepares its metadata, about a minute) into %s"
          % (name, version, dist), file=out, flush=True)
    if os.path.exists(sdist):
        os.unlink(sdist)  # a file with another hash: pip would keep it and fail the hash check
    result = subprocess.run(argv, check=False)
    if result.returncode != 0:
        raise FetchError("pip download failed (exit %d): %s" % (result.returncode, " ".join(argv)))
    if not os.path.isfile(sdist):
        raise FetchError("pip download succeeded but %s is missing" % sdist)
    found = sha256_of(sdist)
    if found != sha256:
        raise FetchError("%s has sha256 %s, %s pins %s" % (sdist, found, REQUIREMENTS, sha256))
    return sdist, sha256


def collection_root(cache):
    namespace, name = COLLECTION
    return os.path.join(cache, "ansible_collections", namespace, name)


def targets_dir(cache=None):
    return os.path.join(collection_root(cache or cache_dir()), "tests", "integration", "targets")


def extract(sdist, sha256, cache, out=sys.stdout):
    """``tests/integration`` and MANIFEST.json of kubernetes.core, swapped in whole."""
    root = collection_root(cache)
    marker = os.path.join(root, MARKER)
    try:
        with open(marker, encoding="utf-8") as handle:
            if handle.read().strip() == sha256:
                return root
    except OSError:
        pass
    namespace, name = COLLECTION
    os.makedirs(os.path.dirname(root), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".%s.partial-" % name, dir=os.path.dirname(root))
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            top = None
            members = []
            for member in archive:
                top = top or member.name.split("/", 1)[0]
                prefix = "%s/ansible_collections/%s/%s/" % (top, namespace, name)
                if not member.name.startswith(prefix):
                    continue
                relative = member.name[len(prefix):]
                if relative == "MANIFEST.json" or relative.startswith("tests/integration/"):
                    member.name = relative
                    members.append(member)
            if not any(member.name.startswith("tests/integration/targets/") for member in members):
                raise FetchError("%s holds no ansible_collections/%s/%s/tests/integration/targets" % (sdist, namespace, name))
            # The 'data' filter refuses absolute paths, '..' and links leaving the tree.
            archive.extractall(staging, members=members, filter="data")
        with open(os.path.join(staging, "MANIFEST.json"), encoding="utf-8") as handle:
            version = json.load(handle)["collection_info"]["version"]
        if version != EXPECTED_COLLECTION_VERSION:
            raise FetchError("%s carries %s.%s %s, the lab vendors %s"
                             % (os.path.basename(sdist), namespace, name, version, EXPECTED_COLLECTION_VERSION))
        with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as handle:
            handle.write(sha256 + "\n")
        shutil.rmtree(root, ignore_errors=True)
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print("peer sources: extracted %s.%s %s integration targets from %s" % (namespace, name, version, os.path.basename(sdist)),
          file=out, flush=True)
    return root


def extract_dependency(sdist, sha256, cache, namespace, name, out=sys.stdout):
    """A whole collection from the sdist into ``<cache>/ansible_collections/<namespace>/<name>``."""
    root = os.path.join(cache, "ansible_collections", namespace, name)
    marker = os.path.join(root, MARKER)
    try:
        with open(marker, encoding="utf-8") as handle:
            if handle.read().strip() == sha256:
                return root
    except OSError:
        pass
    os.makedirs(os.path.dirname(root), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".%s.partial-" % name, dir=os.path.dirname(root))
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            members = []
            for member in archive:
                parts = member.name.split("/", 1)
                prefix = "ansible_collections/%s/%s/" % (namespace, name)
                if len(parts) == 2 and parts[1].startswith(prefix) and len(parts[1]) > len(prefix):
                    member.name = parts[1][len(prefix):]
                    members.append(member)
            if not members:
                raise FetchError("%s holds no ansible_collections/%s/%s" % (sdist, namespace, name))
            archive.extractall(staging, members=members, filter="data")
        with open(os.path.join(staging, "MANIFEST.json"), encoding="utf-8") as handle:
            version = json.load(handle)["collection_info"]["version"]
        with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as handle:
            handle.write(sha256 + "\n")
        shutil.rmtree(root, ignore_errors=True)
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print("peer sources: extracted %s.%s %s (a test dependency) from %s" % (namespace, name, version, os.path.basename(sdist)),
          file=out, flush=True)
    return root


def dependency_dirs(cache=None):
    """{(namespace, name): directory} of the extracted test dependencies."""
    cache = cache or cache_dir()
    return {(namespace, name): os.path.join(cache, "ansible_collections", namespace, name) for namespace, name in TEST_DEPENDENCIES}


def ensure(find_links=None, no_index=False, out=sys.stdout):
    """The extracted targets directory, fetching and extracting what the cache lacks."""
    cache = cache_dir()
    sdist, sha256 = download(cache, find_links=find_links, no_index=no_index, out=out)
    extract(sdist, sha256, cache, out=out)
    for namespace, name in TEST_DEPENDENCIES:
        extract_dependency(sdist, sha256, cache, namespace, name, out=out)
    return targets_dir(cache)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--find-links", metavar="DIR", help="also look for the sdist in DIR (passed to pip download)")
    parser.add_argument("--no-index", action="store_true", help="do not ask PyPI (with --find-links: offline)")
    parser.add_argument("--print-path", action="store_true", help="print only the targets directory")
    args = parser.parse_args(argv)
    try:
        path = ensure(find_links=args.find_links, no_index=args.no_index, out=sys.stderr if args.print_path else sys.stdout)
    except FetchError as exc:
        print("peer sources: %s" % exc, file=sys.stderr)
        return 1
    if args.print_path:
        print(path)
    else:
        print("kubernetes.core integration targets: %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
