# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _cluster_state_fetch: which export is the newest complete one, and every file checked against the manifest."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from botocore.exceptions import ClientError

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state as cs
from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state_fetch as fetch
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import S3Error

BUCKET = "backups"
PREFIX = "cluster-state/"


class FakeS3:
    """A bucket in a dict; list_objects_v2 pages by ``page_size`` keys so that pagination is exercised."""

    def __init__(self, objects=None, page_size=2, fail=None):
        self.objects = dict(objects or {})
        self.page_size = page_size
        self.gets = []
        self.fail = fail

    def list_objects_v2(self, Bucket, Prefix, ContinuationToken=None):
        if self.fail:
            raise ClientError({"Error": {"Code": self.fail, "Message": "no"}}, "ListObjectsV2")
        keys = sorted(k for k in self.objects if k.startswith(Prefix))
        start = int(ContinuationToken or 0)
        page = keys[start:start + self.page_size]
        more = start + self.page_size < len(keys)
        return {"Contents": [{"Key": k} for k in page], "IsTruncated": more,
                **({"NextContinuationToken": str(start + self.page_size)} if more else {})}

    def get_object(self, Bucket, Key):
        self.gets.append(Key)
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}


def export(when, files=None, prefix=PREFIX, manifest=True, **manifest_changes):
    """The objects of one uploaded export: its files and, unless ``manifest=False``, its manifest."""
    files = files if files is not None else {"volumes.yaml": b"items: [v]\n", "persistentvolumeclaims.yaml": b"items: [c]\n"}
    infos = {name: {"sha256": hashlib.sha256(data).hexdigest(), "objects": 1} for name, data in files.items()}
    exported_at = "%s-%s-%sT%s:%s:%sZ" % (when[0:4], when[4:6], when[6:8], when[9:11], when[11:13], when[13:15])
    body = cs.build_manifest(exported_at, "v1.10.2", "v1.31.0", infos, [], [])
    body.update(manifest_changes)
    objects = {prefix + when + "/" + name: data for name, data in files.items()}
    if manifest:
        objects[prefix + when + "/manifest.json"] = cs.dump_manifest(body)
    return objects


def test_newest_complete_export_wins_over_a_newer_incomplete_one():
    s3 = FakeS3({**export("20261120T010000Z"), **export("20261121T010000Z"), **export("20261122T010000Z", manifest=False),
                 "cluster-state/README": b"not an export", "cluster-state/notes/manifest.json": b"{}"})
    base, manifest, data, skipped = fetch.locate(s3, BUCKET, PREFIX)
    assert base == "cluster-state/20261121T010000Z/"
    assert manifest["exported_at"] == "2026-11-21T01:00:00Z" and json.loads(data) == manifest
    assert skipped == ["20261122T010000Z"]
    contents = fetch.download(s3, BUCKET, base, manifest)
    assert contents == {"persistentvolumeclaims.yaml": b"items: [c]\n", "volumes.yaml": b"items: [v]\n"}


def test_exports_under_another_prefix_are_not_seen():
    s3 = FakeS3({**export("20261121T010000Z"), **export("20261122T010000Z", prefix="elsewhere/")})
    base, _manifest, _data, skipped = fetch.locate(s3, BUCKET, PREFIX)
    assert base == "cluster-state/20261121T010000Z/" and skipped == []


def test_no_complete_export_is_a_clear_error_naming_the_incomplete_ones():
    s3 = FakeS3(export("20261122T010000Z", manifest=False))
    expected = r"no complete cluster-state export .* under s3://backups/cluster-state/ \(only 1 incomplete export\(s\) without a manifest: 20261122T010000Z\)"
    with pytest.raises(fetch.FetchError, match=expected):
        fetch.locate(s3, BUCKET, PREFIX)
    with pytest.raises(fetch.FetchError, match="no complete cluster-state export"):
        fetch.locate(FakeS3(), BUCKET, PREFIX)


def test_hash_mismatch_names_the_file_and_both_hashes():
    objects = export("20261121T010000Z")
    objects["cluster-state/20261121T010000Z/volumes.yaml"] = b"items: [tampered]\n"
    s3 = FakeS3(objects)
    base, manifest, _data, _skipped = fetch.locate(s3, BUCKET, PREFIX)
    with pytest.raises(fetch.FetchError) as caught:
        fetch.download(s3, BUCKET, base, manifest)
    message = str(caught.value)
    assert message.startswith("volumes.yaml in the export s3://backups/cluster-state/20261121T010000Z/ is damaged"), message
    assert hashlib.sha256(b"items: [tampered]\n").hexdigest() in message and manifest["files"]["volumes.yaml"]["sha256"] in message


def test_missing_file_names_the_file():
    objects = export("20261121T010000Z")
    del objects["cluster-state/20261121T010000Z/persistentvolumeclaims.yaml"]
    s3 = FakeS3(objects)
    base, manifest, _data, _skipped = fetch.locate(s3, BUCKET, PREFIX)
    with pytest.raises(fetch.FetchError, match=r"^persistentvolumeclaims.yaml is missing from the export s3://backups/cluster-state/20261121T010000Z/"):
        fetch.download(s3, BUCKET, base, manifest)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "is not valid JSON"),
    (b"[]", "is not a JSON object"),
    (json.dumps({"format": "other/v9", "files": {}}).encode(), "has format 'other/v9'"),
    (json.dumps({"format": cs.MANIFEST_FORMAT, "files": {}}).encode(), "lists no files"),
    (json.dumps({"format": cs.MANIFEST_FORMAT, "files": {"../../etc/passwd": {"sha256": "0" * 64}}}).encode(), "not a plain file name"),
    (json.dumps({"format": cs.MANIFEST_FORMAT, "files": {"manifest.json": {"sha256": "0" * 64}}}).encode(), "not a plain file name"),
    (json.dumps({"format": cs.MANIFEST_FORMAT, "files": {"volumes.yaml": {"sha256": "xyz"}}}).encode(), "no valid sha256 for volumes.yaml"),
])
def test_a_malformed_manifest_is_named(body, message):
    s3 = FakeS3({"cluster-state/20261121T010000Z/manifest.json": body})
    with pytest.raises(fetch.FetchError, match="^s3://backups/cluster-state/20261121T010000Z/manifest.json .*" + message.replace("(", r"\(")):
        fetch.locate(s3, BUCKET, PREFIX)


def test_s3_errors_are_classified():
    with pytest.raises(S3Error, match="Failed to list s3://backups/cluster-state/: AccessDenied") as caught:
        fetch.locate(FakeS3(fail="AccessDenied"), BUCKET, PREFIX)
    assert caught.value.kind == "denied"


def test_same_export_needs_the_same_manifest_and_intact_files():
    manifest = {"format": cs.MANIFEST_FORMAT, "files": {"a.yaml": {"sha256": "0" * 64}}}
    assert fetch.same_export(dict(manifest), True, manifest) is True
    assert fetch.same_export(dict(manifest), False, manifest) is False
    assert fetch.same_export(None, False, manifest) is False
    assert fetch.same_export({**manifest, "exported_at": "x"}, True, manifest) is False


def test_a_listing_cut_short_is_an_error_not_fewer_exports():
    """A page truncated without a continuation token used to end the listing: a newer export went unseen."""
    s3 = FakeS3({**export("20261120T010000Z"), **export("20261122T010000Z")})
    real = s3.list_objects_v2

    def no_token(**kwargs):
        page = real(**kwargs)
        page.pop("NextContinuationToken", None)
        return page
    s3.list_objects_v2 = no_token
    with pytest.raises(S3Error, match="the listing was cut short") as caught:
        fetch.list_exports(s3, BUCKET, PREFIX)
    assert caught.value.code == "TruncatedListing"
