# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of longhorn_cluster_state with a fake cluster, a fake bucket and a temporary directory."""

from __future__ import annotations

import copy
import datetime
import hashlib
import io
import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args
from botocore.exceptions import ClientError

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import LonghornError
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import S3Error
from ansible_collections.homelab.longhorn_dr.plugins.modules import longhorn_cluster_state as module_under_test

NS = "longhorn-system"
NOW = datetime.datetime(2026, 11, 22, 1, 23, 45, tzinfo=datetime.timezone.utc)
SECRET = "s3cr3t-v4lue-never-shown"
FILES = ["backuptargets.yaml", "persistentvolumeclaims.yaml", "persistentvolumes.yaml", "recurringjobs.yaml", "storageclasses.yaml",
         "volumes.yaml"]


def cluster(version="v1.10.2"):
    vol = "pvc-0123"
    return {
        "PersistentVolumeClaim": [{"metadata": {"name": "data", "namespace": "apps", "uid": "c-1", "resourceVersion": "5"},
                                   "spec": {"volumeName": vol, "storageClassName": "longhorn", "accessModes": ["ReadWriteOnce"]},
                                   "status": {"phase": "Bound"}}],
        "PersistentVolume": [{"metadata": {"name": vol, "uid": "p-1"},
                              "spec": {"csi": {"driver": "driver.longhorn.io", "volumeHandle": vol}, "storageClassName": "longhorn",
                                       "accessModes": ["ReadWriteOnce"], "claimRef": {"namespace": "apps", "name": "data", "uid": "c-1"}}}],
        "StorageClass": [{"metadata": {"name": "longhorn"}, "provisioner": "driver.longhorn.io"}],
        "Volume": [{"metadata": {"name": vol, "namespace": NS}, "spec": {"size": "1073741824", "numberOfReplicas": 2},
                    "status": {"lastBackup": "backup-1", "kubernetesStatus": {"namespace": "apps", "pvcName": "data"}}}],
        "RecurringJob": [{"metadata": {"name": "nightly", "namespace": NS}, "spec": {"task": "backup", "cron": "0 2 * * *", "retain": 7},
                          "status": {"executionCount": 4}}],
        "BackupTarget": [{"metadata": {"name": "default", "namespace": NS},
                          "spec": {"backupTargetURL": "s3://b@us-east-1/", "credentialSecret": "minio-credentials",
                                   "syncRequestedAt": "2026-11-22T01:00:00Z"}}],
        "Backup": [{"metadata": {"name": "backup-1"}, "status": {"state": "Completed", "volumeName": vol, "url": "s3://b@us-east-1/?backup=backup-1",
                                                                 "backupCreatedAt": "2026-11-22T01:00:00Z"}}],
        "Setting": [{"metadata": {"name": "current-longhorn-version"}, "value": version},
                    {"metadata": {"name": "backup-target"}, "value": "s3://b@us-east-1/"}],
    }


class FakeAccess:
    """Answers list() from ``objects``; any write would be a bug (the module only reads)."""

    def __init__(self, objects):
        self.objects = copy.deepcopy(objects)
        self.lists = []

    def list(self, kind, _api_version, namespace=None, **_kwargs):
        self.lists.append((kind, namespace))
        return copy.deepcopy(self.objects.get(kind, []))

    def __getattr__(self, name):
        raise AssertionError("unexpected call %s" % name)


class FakeS3:
    def __init__(self, objects=None, fail=None):
        self.objects = dict(objects or {})
        self.puts = []
        self.heads = []
        self.lists = []
        self.gets = []
        self.fail = fail

    def head_object(self, Bucket, Key):
        self.heads.append(Key)
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404"}}, "HeadObject")
        return {"Metadata": {"sha256": hashlib.sha256(self.objects[Key]).hexdigest()}}

    def list_objects_v2(self, Bucket, Prefix, ContinuationToken=None):
        self.lists.append(Prefix)
        return {"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)], "IsTruncated": False}

    def get_object(self, Bucket, Key):
        self.gets.append(Key)
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket, Key, Body, ContentType, Metadata):
        if self.fail:
            raise ClientError({"Error": {"Code": self.fail, "Message": "no"}}, "PutObject")
        assert Metadata["sha256"] == hashlib.sha256(Body).hexdigest()
        self.puts.append(Key)
        self.objects[Key] = Body


class FakeModule:
    def __init__(self, dest, check_mode=False, diff=True, **params):
        self.params = dict(state="present", namespace=NS, dest=str(dest), baselines=[], max_age=None, upload=False, upload_prefix="cluster-state/",
                           endpoint_url=None, access_key=None, secret_key=None, session_token=None, region="us-east-1",
                           s3_validate_certs=True, ca_bundle=None, bucket=None, prefix="")
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = diff


def run(dest, objects=None, now=NOW, s3=None, **params):
    module = FakeModule(dest, **params)
    access = FakeAccess(objects if objects is not None else cluster())
    exporter = module_under_test.Exporter(module, access, s3_factory=(lambda: s3), now=now, k8s_version="v1.31.0")
    return exporter.run(), access


def snapshot(dest):
    return {p: (open(os.path.join(dest, p), "rb").read(), os.stat(os.path.join(dest, p)).st_mtime_ns) for p in sorted(os.listdir(dest))}


def test_first_export_writes_files_then_manifest(tmp_path):
    dest = tmp_path / "export"
    result, access = run(dest)
    assert result["changed"] is True and result["unchanged_reason"] == ""
    assert sorted(os.listdir(dest)) == sorted(FILES + ["manifest.json"])
    assert sorted(kind for kind, _ns in access.lists) == sorted(k for k, _v, _n in module_under_test.KINDS), "one list per kind"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest == result["manifest"]
    assert (manifest["exported_at"], manifest["longhorn_version"], manifest["kubernetes_version"]) == (
        "2026-11-22T01:23:45Z", "v1.10.2", "v1.31.0")
    for entry in result["files"]:
        name = os.path.basename(entry["path"])
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == entry["sha256"] == manifest["files"][name]["sha256"]
    assert manifest["files"]["recurringjobs.yaml"]["objects"] == 1
    [vol] = manifest["volumes"]
    assert (vol["pvc_namespace"], vol["pvc_name"], vol["size"], vol["number_of_replicas"]) == ("apps", "data", 1073741824, 2)
    assert vol["last_backup"]["name"] == "backup-1"
    assert "syncRequestedAt" not in (dest / "backuptargets.yaml").read_text()
    assert "executionCount" not in (dest / "recurringjobs.yaml").read_text()
    assert [d["after_header"] for d in result["diff"]] == [str(dest / n) for n in FILES + ["manifest.json"]]
    assert all(d["before"] == "" for d in result["diff"])


def test_check_mode_writes_nothing_and_shows_the_diff(tmp_path):
    dest = tmp_path / "export"
    result, _access = run(dest, check_mode=True)
    assert result["changed"] is True and not dest.exists()
    assert len(result["diff"]) == len(FILES) + 1 and result["manifest"]["exported_at"] == "2026-11-22T01:23:45Z"


def test_max_age_keeps_an_identical_young_export(tmp_path):
    dest = tmp_path / "export"
    first, _access = run(dest)
    before = snapshot(dest)
    again, _access = run(dest, now=NOW + datetime.timedelta(minutes=30), max_age="1h")
    assert again["changed"] is False and "younger than max_age" in again["unchanged_reason"]
    assert again["manifest"] == first["manifest"] and "diff" not in again
    assert snapshot(dest) == before
    # Older than max_age: a new export, in which only the manifest changes.
    later, _access = run(dest, now=NOW + datetime.timedelta(hours=2), max_age="1h")
    assert later["changed"] is True and [os.path.basename(d["after_header"]) for d in later["diff"]] == ["manifest.json"]
    assert later["manifest"]["exported_at"] == "2026-11-22T03:23:45Z"


def test_without_max_age_every_run_is_a_new_export(tmp_path):
    dest = tmp_path / "export"
    run(dest)
    again, _access = run(dest, now=NOW + datetime.timedelta(seconds=5))
    assert again["changed"] is True and [os.path.basename(d["after_header"]) for d in again["diff"]] == ["manifest.json"]


def test_changed_content_or_a_tampered_file_is_exported_again(tmp_path):
    dest = tmp_path / "export"
    run(dest)
    objects = cluster()
    objects["RecurringJob"][0]["spec"]["retain"] = 14
    changed, _access = run(dest, objects=objects, now=NOW + datetime.timedelta(minutes=1), max_age="1h")
    assert changed["changed"] is True
    assert [os.path.basename(d["after_header"]) for d in changed["diff"]] == ["recurringjobs.yaml", "manifest.json"]
    (dest / "volumes.yaml").write_text("edited by hand\n")
    repaired, _access = run(dest, objects=objects, now=NOW + datetime.timedelta(minutes=2), max_age="1h")
    assert repaired["changed"] is True and "volumes.yaml" in [os.path.basename(d["after_header"]) for d in repaired["diff"]]
    assert hashlib.sha256((dest / "volumes.yaml").read_bytes()).hexdigest() == repaired["manifest"]["files"]["volumes.yaml"]["sha256"]


def test_legacy_settings_file_comes_and_goes_with_the_version(tmp_path):
    dest = tmp_path / "export"
    legacy, _access = run(dest, objects=cluster("v1.7.2"))
    assert "settings.yaml" in legacy["manifest"]["files"] and "backup-target" in (dest / "settings.yaml").read_text()
    upgraded, _access = run(dest, now=NOW + datetime.timedelta(minutes=1))
    assert "settings.yaml" not in upgraded["manifest"]["files"] and not (dest / "settings.yaml").exists()
    assert any(d["after_header"].endswith("settings.yaml (removed)") for d in upgraded["diff"])


def test_baselines_are_recorded_verbatim_and_checked(tmp_path):
    baseline = {"name": "rows", "namespace": "apps", "pod": "app-1", "container": "app", "command": "count", "stdout": "3\n",
                "stderr": "", "rc": 0}
    result, _access = run(tmp_path / "export", baselines=[baseline])
    assert result["manifest"]["baselines"] == [baseline]
    with pytest.raises(LonghornError, match="used twice"):
        run(tmp_path / "other", baselines=[baseline, baseline])
    assert not (tmp_path / "other").exists()


def test_upload_puts_the_manifest_last_outside_the_backupstore(tmp_path):
    dest = tmp_path / "export"
    s3 = FakeS3()
    result, _access = run(dest, s3=s3, upload=True, bucket="b", endpoint_url="http://minio:9000", secret_key=SECRET)
    assert result["uploaded"] == s3.puts and len(s3.puts) == len(FILES) + 1
    assert s3.puts[-1] == "cluster-state/20261122T012345Z/manifest.json"
    assert all(k.startswith("cluster-state/20261122T012345Z/") for k in s3.puts)
    assert s3.objects[s3.puts[-1]] == (dest / "manifest.json").read_bytes()
    assert SECRET not in json.dumps(result)
    # Reused export already in the bucket: nothing to do.
    again, _access = run(dest, s3=s3, now=NOW + datetime.timedelta(minutes=1), max_age="1h", upload=True, bucket="b")
    assert again["changed"] is False and again["uploaded"] == [] and len(s3.puts) == len(FILES) + 1
    # Reused export missing from a new bucket: uploaded, which is a change.
    empty = FakeS3()
    third, _access = run(dest, s3=empty, now=NOW + datetime.timedelta(minutes=2), max_age="1h", upload=True, bucket="b")
    assert third["changed"] is True and third["unchanged_reason"] and third["uploaded"] == empty.puts
    assert empty.puts[-1] == "cluster-state/20261122T012345Z/manifest.json"


def test_upload_in_check_mode_puts_nothing(tmp_path):
    s3 = FakeS3()
    result, _access = run(tmp_path / "export", s3=s3, check_mode=True, upload=True, bucket="b")
    assert s3.puts == [] and len(result["uploaded"]) == len(FILES) + 1


def test_upload_prefix_inside_the_backupstore_is_refused_before_anything(tmp_path):
    s3 = FakeS3()
    with pytest.raises(LonghornError, match="is inside the backupstore 'cluster-a/backupstore/'"):
        run(tmp_path / "export", s3=s3, upload=True, bucket="b", prefix="cluster-a", upload_prefix="cluster-a/backupstore/state/")
    assert not (tmp_path / "export").exists() and s3.puts == [] and s3.heads == []


def test_upload_error_is_classified_without_credentials(tmp_path):
    with pytest.raises(S3Error, match="Failed to upload s3://b/cluster-state/20261122T012345Z/backuptargets.yaml: AccessDenied") as info:
        run(tmp_path / "export", s3=FakeS3(fail="AccessDenied"), upload=True, bucket="b", secret_key=SECRET)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("max_age", ["soon", "-5"])
def test_invalid_max_age_is_named(tmp_path, max_age):
    with pytest.raises(LonghornError, match="invalid max_age %r" % max_age):
        run(tmp_path / "export", max_age=max_age)


def test_dest_that_is_a_file_is_refused(tmp_path):
    dest = tmp_path / "file"
    dest.write_text("x")
    with pytest.raises(LonghornError, match="exists and is not a directory"):
        run(dest)


def test_argspec_upload_needs_bucket_and_endpoint(capsys, tmp_path):
    with patch_module_args({"dest": str(tmp_path), "upload": True, "secret_key": SECRET}):
        with pytest.raises(SystemExit):
            module_under_test.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and "upload is True but all of the following are missing: endpoint_url, bucket" in result["msg"]
    assert SECRET not in json.dumps(result)


def test_argspec_keeps_s3_and_kubernetes_tls_apart():
    spec = module_under_test.argument_spec()
    assert spec["validate_certs"].get("aliases") == ["verify_ssl"], "the Kubernetes option"
    assert spec["s3_validate_certs"] == {"type": "bool", "default": True}
    assert spec["secret_key"]["no_log"] is True and spec["access_key"]["no_log"] is True
    assert spec["endpoint_url"]["required"] is False and spec["bucket"]["required"] is False


# ---- state=fetched ------------------------------------------------------------------------------------------------


def uploaded_bucket(tmp_path, when=NOW, objects=None, s3=None):
    """A FakeS3 holding an export uploaded the way state=present uploads it."""
    s3 = s3 or FakeS3()
    result, _access = run(tmp_path / ("source-%s" % when.strftime("%H%M%S")), objects=objects, now=when, s3=s3, upload=True, bucket="b")
    return s3, result


def fetched(dest, s3, check_mode=False, **params):
    module = FakeModule(dest, check_mode=check_mode, state="fetched", bucket="b", endpoint_url="http://minio:9000", secret_key=SECRET,
                        **params)
    return module_under_test.Fetcher(module, s3_factory=lambda: s3).run()


def test_fetch_downloads_the_newest_complete_export_and_is_idempotent(tmp_path):
    s3, older = uploaded_bucket(tmp_path)
    s3, newer = uploaded_bucket(tmp_path, when=NOW + datetime.timedelta(hours=1), objects=cluster("v1.7.2"), s3=s3)
    # An upload that did not finish: files but no manifest, newer than both.
    s3.objects["cluster-state/20261122T090000Z/volumes.yaml"] = b"half\n"
    dest = tmp_path / "fetched"
    result = fetched(dest, s3)
    assert result["changed"] is True, result
    assert result["source"] == "s3://b/cluster-state/20261122T022345Z/" and result["skipped_exports"] == ["20261122T090000Z"]
    assert result["manifest"] == newer["manifest"] and result["fetched"][-1] == "cluster-state/20261122T022345Z/manifest.json"
    assert sorted(os.listdir(dest)) == sorted(FILES + ["settings.yaml", "manifest.json"])
    assert (dest / "manifest.json").read_bytes() == (tmp_path / "source-022345" / "manifest.json").read_bytes()
    for entry in result["files"]:
        assert hashlib.sha256(open(entry["path"], "rb").read()).hexdigest() == entry["sha256"]
    assert not [k for k in s3.gets if "20261122T012345Z" in k or "090000Z" in k], "only the newest complete export is read"
    assert SECRET not in json.dumps(result)
    assert result["uploaded"] == [] and older["manifest"] != newer["manifest"]

    # Again: the same export with intact files is no change, and only the manifest is read.
    before = snapshot(dest)
    s3.gets.clear()
    again = fetched(dest, s3)
    assert again["changed"] is False and again["fetched"] == [] and "already holds the export" in again["unchanged_reason"]
    assert s3.gets == ["cluster-state/20261122T022345Z/manifest.json"] and snapshot(dest) == before

    # A file edited by hand: fetched again.
    (dest / "volumes.yaml").write_text("edited\n")
    repaired = fetched(dest, s3)
    assert repaired["changed"] is True and (dest / "volumes.yaml").read_bytes() == s3.objects["cluster-state/20261122T022345Z/volumes.yaml"]
    assert [d["after_header"] for d in repaired["diff"]] == [str(dest / "volumes.yaml")]


def test_fetch_replaces_an_older_export_and_removes_its_extra_files(tmp_path):
    s3, _legacy = uploaded_bucket(tmp_path, objects=cluster("v1.7.2"))
    dest = tmp_path / "fetched"
    fetched(dest, s3)
    assert (dest / "settings.yaml").exists()
    s3, newer = uploaded_bucket(tmp_path, when=NOW + datetime.timedelta(hours=1), s3=s3)
    result = fetched(dest, s3)
    assert result["changed"] is True and json.loads((dest / "manifest.json").read_text()) == newer["manifest"]
    assert not (dest / "settings.yaml").exists()
    assert any(d["after_header"].endswith("settings.yaml (removed)") for d in result["diff"])


def test_fetch_in_check_mode_writes_nothing_and_downloads_only_the_manifest(tmp_path):
    s3, _result = uploaded_bucket(tmp_path)
    dest = tmp_path / "fetched"
    result = fetched(dest, s3, check_mode=True)
    assert result["changed"] is True and not dest.exists()
    assert s3.gets == ["cluster-state/20261122T012345Z/manifest.json"]
    assert result["fetched"] == ["cluster-state/20261122T012345Z/%s" % n for n in FILES + ["manifest.json"]]


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_fetch_of_a_damaged_export_names_the_file_and_leaves_dest_alone(tmp_path, damage):
    s3, first = uploaded_bucket(tmp_path)
    dest = tmp_path / "fetched"
    fetched(dest, s3)
    before = snapshot(dest)
    s3, _newer = uploaded_bucket(tmp_path, when=NOW + datetime.timedelta(hours=1), objects=cluster("v1.10.3"), s3=s3)
    key = "cluster-state/20261122T022345Z/recurringjobs.yaml"
    if damage == "tamper":
        s3.objects[key] = b"items: []\n"
        expected = r"^recurringjobs.yaml in the export s3://b/cluster-state/20261122T022345Z/ is damaged: its sha256 is [0-9a-f]{64}, the manifest says"
    else:
        del s3.objects[key]
        expected = r"^recurringjobs.yaml is missing from the export s3://b/cluster-state/20261122T022345Z/"
    with pytest.raises(module_under_test.fetch.FetchError, match=expected):
        fetched(dest, s3)
    assert snapshot(dest) == before, "a failed fetch must leave the export that was there"
    assert json.loads((dest / "manifest.json").read_text()) == first["manifest"]
    with pytest.raises(module_under_test.fetch.FetchError, match=expected):
        fetched(tmp_path / "new", s3)
    assert not (tmp_path / "new").exists()


def test_fetch_refuses_export_options_and_bad_input(tmp_path):
    s3, _result = uploaded_bucket(tmp_path)
    with pytest.raises(LonghornError, match="upload=True, max_age='1h' only apply to state=present"):
        fetched(tmp_path / "x", s3, upload=True, max_age="1h")
    with pytest.raises(LonghornError, match="upload_prefix '../x' must not contain"):
        fetched(tmp_path / "x", s3, upload_prefix="../x")
    with pytest.raises(module_under_test.fetch.FetchError, match="no complete cluster-state export .* under s3://b/elsewhere/"):
        fetched(tmp_path / "x", s3, upload_prefix="/elsewhere")
    assert not (tmp_path / "x").exists()


def test_argspec_fetched_needs_bucket_and_endpoint(capsys, tmp_path):
    with patch_module_args({"dest": str(tmp_path), "state": "fetched", "secret_key": SECRET}):
        with pytest.raises(SystemExit):
            module_under_test.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and "state is fetched but all of the following are missing: endpoint_url, bucket" in result["msg"]
    assert SECRET not in json.dumps(result)
