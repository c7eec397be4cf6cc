# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Finding and downloading the newest complete cluster-state export in the bucket (longhorn_cluster_state state=fetched).

An export is uploaded as ``<prefix><YYYYMMDDTHHMMSSZ>/<file>``, ``manifest.json`` last (_cluster_state.upload_keys), so a
folder with a manifest is complete and a folder without one is an upload that did not finish. The folder names sort by
time. Nothing here writes to disk: the caller gets verified bytes or a FetchError naming what is wrong.
"""

from __future__ import annotations

import json
import re

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state as cs
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import call_with_retry, classify, list_object_pages

# <prefix>20261122T012345Z/ as export_id() writes it.
EXPORT_ID = re.compile(r"^\d{8}T\d{6}Z$")
# A file name the manifest may list: a plain name in the export directory, never a path.
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class FetchError(ValueError):
    """The export in the bucket cannot be used (none there, a malformed manifest, a missing or damaged file)."""


def list_exports(client, bucket, prefix):
    """``{export id: set of file names}`` of the folders under ``prefix`` that look like exports (complete or not)."""
    exports = {}
    for page in list_object_pages(client, bucket, prefix, "list s3://%s/%s" % (bucket, prefix)):
        for obj in page.get("Contents") or ():
            folder, _slash, name = obj["Key"][len(prefix):].partition("/")
            if EXPORT_ID.match(folder) and name and "/" not in name:
                exports.setdefault(folder, set()).add(name)
    return exports


def newest_complete(exports):
    """``(export id, ids of newer incomplete exports)``; the export id is None when no folder has a manifest."""
    complete = sorted(folder for folder, names in exports.items() if cs.MANIFEST_NAME in names)
    newest = complete[-1] if complete else None
    skipped = sorted((folder for folder in exports if newest is None or folder > newest), reverse=True)
    return newest, skipped


def get(client, bucket, key):
    """The object's bytes, or None when there is no such key."""
    try:
        response = call_with_retry(client.get_object, Bucket=bucket, Key=key)
        return response["Body"].read()
    except Exception as exc:  # pylint: disable=broad-except
        error = classify(exc, "read s3://%s/%s" % (bucket, key))
        if error.kind == "missing":
            return None
        raise error from None


def parse_manifest(data, location):
    """The manifest dict, after checking its format and that ``files`` only names plain files with a sha256."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FetchError("%s is not valid JSON: %s" % (location, exc)) from None
    if not isinstance(manifest, dict):
        raise FetchError("%s is not a JSON object" % location)
    if manifest.get("format") != cs.MANIFEST_FORMAT:
        raise FetchError("%s has format %r, expected %r" % (location, manifest.get("format"), cs.MANIFEST_FORMAT))
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise FetchError("%s lists no files" % location)
    for name, info in files.items():
        if not FILE_NAME.match(name) or name == cs.MANIFEST_NAME:
            raise FetchError("%s lists the file %r, which is not a plain file name of an export" % (location, name))
        if not isinstance(info, dict) or not re.match(r"^[0-9a-f]{64}$", str(info.get("sha256") or "")):
            raise FetchError("%s has no valid sha256 for %s" % (location, name))
    return manifest


def locate(client, bucket, prefix):
    """``(base key of the newest complete export, its manifest, the manifest's bytes, newer incomplete export ids)``."""
    exports = list_exports(client, bucket, prefix)
    newest, skipped = newest_complete(exports)
    if newest is None:
        incomplete = (" (only %d incomplete export(s) without a manifest: %s)" % (len(skipped), ", ".join(skipped))) if skipped else ""
        raise FetchError("no complete cluster-state export (<time>/%s) under s3://%s/%s%s; upload one with the cluster_state role "
                         "(cluster_state_upload=true)" % (cs.MANIFEST_NAME, bucket, prefix, incomplete))
    base = "%s%s/" % (prefix, newest)
    key = base + cs.MANIFEST_NAME
    data = get(client, bucket, key)
    if data is None:
        raise FetchError("s3://%s/%s disappeared while it was read" % (bucket, key))
    return base, parse_manifest(data, "s3://%s/%s" % (bucket, key)), data, skipped


def download(client, bucket, base, manifest):
    """``{file name: bytes}`` of every file the manifest lists, each checked against its sha256; FetchError names the file."""
    contents = {}
    for name, info in sorted(manifest["files"].items()):
        key = base + name
        data = get(client, bucket, key)
        if data is None:
            raise FetchError("%s is missing from the export s3://%s/%s: the manifest lists it, the bucket does not have it"
                             % (name, bucket, base))
        digest = cs.sha256_hex(data)
        if digest != info["sha256"]:
            raise FetchError("%s in the export s3://%s/%s is damaged: its sha256 is %s, the manifest says %s"
                             % (name, bucket, base, digest, info["sha256"]))
        contents[name] = data
    return contents


def same_export(local_manifest, local_files_ok, manifest):
    """Whether the directory already holds this export, every file intact."""
    return bool(local_files_ok) and local_manifest == manifest
