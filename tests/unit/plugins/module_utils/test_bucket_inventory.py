# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""minio_bucket_check's logic: inventory, freshness, integrity, settings, write probe, fail_on.

Buckets are filled by the lab's BackupStore writer (the real backupstore layout) on an
in-memory S3 fake whose clock the tests control. LastModified has whole seconds, as S3
listings have, so ties with the last backup are tested too. The last tests run against the
lab's S3 server for real pagination and real error answers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import types

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backupstore as bs
from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _bucket_inventory as inv
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import s3_client

from tests.lab.longhorn import bucket_faults
from tests.lab.longhorn.backupstore import BackupStore, go_json
from tests.lab.s3 import S3Server

UTC = datetime.timezone.utc
MIB = 1024 * 1024
BLOCK = 2 * MIB
START = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def client_error(code, operation, status=400, message=""):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class _Body:
    def __init__(self, data):
        self._data = data

    def read(self):
        return self._data


class _NoSuchKey(ClientError):
    pass


class FakeS3:
    """Enough of a boto3 S3 client for the lab writer and the inspector; ``calls`` records every request."""

    def __init__(self, bucket="backups", page_size=7):
        self.bucket = bucket
        self.page_size = page_size
        self.objects = {}
        self.clock = START
        self.calls = []
        self.failures = {}      # (operation, key or None) -> list of exceptions to raise, in order
        self.settings = {"GetBucketVersioning": {}, "GetObjectLockConfiguration": None, "GetBucketLifecycleConfiguration": None}
        self.exceptions = types.SimpleNamespace(NoSuchKey=_NoSuchKey)

    # test controls
    def tick(self, seconds):
        self.clock += datetime.timedelta(seconds=seconds)

    def fail(self, operation, exc, key=None, times=1):
        self.failures.setdefault((operation, key), []).extend([exc] * times)

    def gets(self, suffix=""):
        return [key for operation, key in self.calls if operation == "GetObject" and key.endswith(suffix)]

    def _enter(self, operation, key=None):
        self.calls.append((operation, key))
        for candidate in ((operation, key), (operation, None)):
            pending = self.failures.get(candidate)
            if pending:
                raise pending.pop(0)

    def _check_bucket(self, bucket, operation):
        if bucket != self.bucket:
            raise client_error("NoSuchBucket", operation, 404, "The specified bucket does not exist")

    # objects
    def put_object(self, Bucket, Key, Body):  # pylint: disable=invalid-name
        self._enter("PutObject", Key)
        self._check_bucket(Bucket, "PutObject")
        self.objects[Key] = (bytes(Body), self.clock.replace(microsecond=0))
        return {}

    def get_object(self, Bucket, Key):  # pylint: disable=invalid-name
        self._enter("GetObject", Key)
        self._check_bucket(Bucket, "GetObject")
        if Key not in self.objects:
            raise _NoSuchKey({"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."},
                              "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject")
        return {"Body": _Body(self.objects[Key][0])}

    def head_object(self, Bucket, Key):  # pylint: disable=invalid-name
        self._enter("HeadObject", Key)
        self._check_bucket(Bucket, "HeadObject")
        if Key not in self.objects:
            raise client_error("404", "HeadObject", 404, "Not Found")
        return {"ContentLength": len(self.objects[Key][0])}

    def delete_object(self, Bucket, Key):  # pylint: disable=invalid-name
        self._enter("DeleteObject", Key)
        self._check_bucket(Bucket, "DeleteObject")
        self.objects.pop(Key, None)
        return {}

    def list_objects_v2(self, Bucket, Prefix="", Delimiter=None, ContinuationToken=None, MaxKeys=None):  # pylint: disable=invalid-name
        self._enter("ListObjectsV2", Prefix)
        self._check_bucket(Bucket, "ListObjectsV2")
        entries = []
        seen_prefixes = set()
        for key in sorted(self.objects):
            if not key.startswith(Prefix):
                continue
            if Delimiter and Delimiter in key[len(Prefix):]:
                common = Prefix + key[len(Prefix):].split(Delimiter, 1)[0] + Delimiter
                if common not in seen_prefixes:
                    seen_prefixes.add(common)
                    entries.append((common, None))
                continue
            entries.append((key, self.objects[key]))
        if ContinuationToken:
            entries = [entry for entry in entries if entry[0] > ContinuationToken]
        page = entries[:MaxKeys or self.page_size]
        truncated = len(entries) > len(page)
        response = {
            "Contents": [{"Key": key, "Size": len(value[0]), "LastModified": value[1]} for key, value in page if value],
            "CommonPrefixes": [{"Prefix": key} for key, value in page if value is None],
            "IsTruncated": truncated,
            "ResponseMetadata": {"HTTPHeaders": {"date": self.clock.strftime("%a, %d %b %Y %H:%M:%S GMT")}},
        }
        if truncated:
            response["NextContinuationToken"] = page[-1][0]
        return response

    def get_paginator(self, operation):
        assert operation == "list_objects_v2"
        fake = self

        class Paginator:
            def paginate(self, **kwargs):
                while True:
                    page = fake.list_objects_v2(**kwargs)
                    yield page
                    if not page["IsTruncated"]:
                        return
                    kwargs["ContinuationToken"] = page["NextContinuationToken"]
        return Paginator()

    # bucket settings
    def _setting(self, operation, Bucket, missing_code):  # pylint: disable=invalid-name
        self._enter(operation)
        self._check_bucket(Bucket, operation)
        value = self.settings[operation]
        if value is None:
            raise client_error(missing_code, operation, 404)
        return value

    def get_bucket_versioning(self, Bucket):  # pylint: disable=invalid-name
        return self._setting("GetBucketVersioning", Bucket, "NoSuchBucket")

    def get_object_lock_configuration(self, Bucket):  # pylint: disable=invalid-name
        return self._setting("GetObjectLockConfiguration", Bucket, "ObjectLockConfigurationNotFoundError")

    def get_bucket_lifecycle_configuration(self, Bucket):  # pylint: disable=invalid-name
        return self._setting("GetBucketLifecycleConfiguration", Bucket, "NoSuchLifecycleConfiguration")


def labels_for(volume, namespace="apps"):
    return {"KubernetesStatus": json.dumps({"pvName": volume, "pvStatus": "Bound", "namespace": namespace,
                                            "pvcName": "data-" + volume, "workloadsStatus": None})}


def block(seed):
    pattern = ("%s|" % seed).encode()
    return (pattern * (BLOCK // len(pattern) + 1))[:BLOCK]


def backup(store, fake, volume, name, blocks, compression="lz4", size=None, tick=60):
    """One complete backup through the lab writer; the fake clock moves ``tick`` seconds first."""
    fake.tick(tick)
    image = b"".join(block(seed) for seed in blocks)
    size = size or len(image)
    writer = store.begin_backup(volume, name, compression=compression, volume_size=size, labels=labels_for(volume))
    writer.write_image(image + bytes(size - len(image)))
    writer.finish(snapshot_name="snap-" + name, snapshot_created_at=fake.clock, created_at=fake.clock, volume_size=size,
                  labels=labels_for(volume))


@pytest.fixture
def fake():
    return FakeS3()


@pytest.fixture
def store(fake):
    return BackupStore(fake, fake.bucket)


def inspect(fake, prefix="", **options):
    inspector = inv.BucketInspector(fake, fake.bucket, prefix, concurrency=4, sleep=lambda _seconds: None)
    return inspector.run(**options), inspector


def by_name(result):
    return {volume["name"]: volume for volume in result["volumes"]}


# ---- quick inventory -------------------------------------------------------------------------


def test_healthy_inventory(fake, store):
    backup(store, fake, "pvc-aaa", "backup-a1", ["a1", "a2"])
    backup(store, fake, "pvc-aaa", "backup-a2", ["a1", "a3"])
    backup(store, fake, "pvc-bbb", "backup-b1", ["b1"], compression="gzip", size=3 * BLOCK)
    result, inspector = inspect(fake)

    assert result["access"] == {"reachable": True, "credentials_valid": True, "bucket_exists": True, "readable": True,
                                "error_code": None, "error": None}
    volumes = by_name(result)
    assert sorted(volumes) == ["pvc-aaa", "pvc-bbb"]
    first = volumes["pvc-aaa"]
    assert (first["size"], first["pvc_namespace"], first["pvc_name"], first["pv_name"]) == (2 * BLOCK, "apps", "data-pvc-aaa", "pvc-aaa")
    assert (first["last_backup_name"], first["backup_count"], first["incomplete_backups"]) == ("backup-a2", 2, 0)
    assert first["last_backup_at"] == (START + datetime.timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # a1, a2, a3: three distinct blocks, DataStored counts 2 MiB each (ref §3.3 BlockCount).
    assert (first["compression"], first["block_count"], first["data_stored"], first["block_objects"]) == ("lz4", 3, 3 * BLOCK, 3)
    second = volumes["pvc-bbb"]
    assert (second["compression"], second["size"], second["block_count"]) == ("gzip", 3 * BLOCK, 1)
    assert result["problems"] == []
    assert inspector.warnings == []
    assert result["capacity"]["stored_bytes"] == sum(len(value[0]) for value in fake.objects.values())
    assert result["capacity"]["object_count"] == len(fake.objects)
    assert result["checked_at"] == fake.clock.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result["volumes"][0]["last_backup_age"] == 60


def test_quick_inventory_reads_volume_cfgs_only_and_pages_the_listing(fake, store):
    for number in range(4):
        backup(store, fake, "pvc-aaa", "backup-%d" % number, ["x%d" % number])
    backup(store, fake, "pvc-bbb", "backup-b", ["y"])
    fake.calls.clear()
    result, _inspector = inspect(fake)

    assert by_name(result)["pvc-aaa"]["backup_count"] == 4
    assert sorted(fake.gets()) == sorted(key for key in fake.objects if key.endswith("/volume.cfg"))
    listings = [key for operation, key in fake.calls if operation == "ListObjectsV2"]
    assert listings == ["backupstore/"] * len(listings) and len(listings) >= 2  # one paginated LIST, no delimiter walk


def test_interrupted_backup_does_not_make_a_volume_fresh(fake, store):
    backup(store, fake, "pvc-aaa", "backup-done", ["a"])
    fake.tick(7200)
    writer = store.begin_backup("pvc-aaa", "backup-cut", compression="lz4", volume_size=BLOCK, labels=labels_for("pvc-aaa"))
    writer.upload_block(0, block("new"))
    writer.abort()  # crashed: stub cfg and a block stay, no lock
    fake.tick(10)
    fake.calls.clear()
    result, _inspector = inspect(fake, max_age=3600, expected_volumes=["pvc-aaa"])

    volume = by_name(result)["pvc-aaa"]
    assert (volume["last_backup_name"], volume["backup_count"], volume["incomplete_backups"]) == ("backup-done", 1, 1)
    assert volume["last_backup_age"] == 7210
    assert result["stale"] == ["pvc-aaa"]
    assert result["missing"] == []  # it has a complete backup, only an old one
    assert [problem["kind"] for problem in result["problems"]] == ["incomplete_backup"]
    assert "backup-cut" in result["problems"][0]["message"]
    # Only the stub was read besides volume.cfg.
    assert [key.rsplit("/", 1)[-1] for key in fake.gets()] == ["volume.cfg", "backup_backup-cut.cfg"]


def test_running_backup_is_incomplete_but_not_a_problem_of_its_own(fake, store):
    backup(store, fake, "pvc-aaa", "backup-done", ["a"])
    # Same second as the last complete backup: only the stub's size gives it away.
    writer = store.begin_backup("pvc-aaa", "backup-running", compression="lz4", volume_size=BLOCK, labels=labels_for("pvc-aaa"))
    result, _inspector = inspect(fake)
    volume = by_name(result)["pvc-aaa"]
    assert (volume["incomplete_backups"], volume["last_backup_name"]) == (1, "backup-done")
    assert [problem["kind"] for problem in result["problems"]] == ["active_lock"]
    writer.abort()


def test_only_possibly_incomplete_cfgs_are_read(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    backup(store, fake, "pvc-aaa", "backup-2", ["b"])
    root = bs.backupstore_root("")
    # An incomplete cfg bigger than Longhorn's stub (another writer's format), written before the last backup:
    # the quick inventory cannot tell it from a complete one; integrity=structure reads it.
    odd = {"Name": "backup-odd", "VolumeName": "pvc-aaa", "CreatedTime": "", "Extra": "x" * 600}
    key = bs.backup_cfg_key(root, "pvc-aaa", "backup-odd")
    fake.objects[key] = (json.dumps(odd).encode(), START)
    fake.calls.clear()
    quick, _inspector = inspect(fake)
    assert by_name(quick)["pvc-aaa"]["incomplete_backups"] == 0
    assert key not in fake.gets()
    deep, _inspector = inspect(fake, integrity="structure")
    assert by_name(deep)["pvc-aaa"]["incomplete_backups"] == 1
    assert by_name(deep)["pvc-aaa"]["backup_count"] == 2
    # Newer than the last backup's cfg: read even by the quick inventory.
    fake.objects[key] = (fake.objects[key][0], fake.clock + datetime.timedelta(seconds=5))
    newer, _inspector = inspect(fake)
    assert by_name(newer)["pvc-aaa"]["incomplete_backups"] == 1


def test_completed_backup_not_yet_in_volume_cfg_counts_as_newest(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    root = bs.backupstore_root("")
    cfg_key = bs.volume_cfg_key(root, "pvc-aaa")
    old_volume_cfg = fake.objects[cfg_key]
    backup(store, fake, "pvc-aaa", "backup-2", ["b"])
    fake.objects[cfg_key] = old_volume_cfg  # the backup cfg is written, volume.cfg not yet (ref §3.3 order)
    result, _inspector = inspect(fake)
    volume = by_name(result)["pvc-aaa"]
    assert (volume["last_backup_name"], volume["backup_count"]) == ("backup-2", 2)
    assert volume["last_backup_at"] == fake.clock.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_volume_directory_problems(fake, store):
    backup(store, fake, "pvc-good", "backup-g", ["g"])
    backup(store, fake, "pvc-nocfg", "backup-n", ["n"])
    backup(store, fake, "pvc-lastgone", "backup-l1", ["l1"])
    backup(store, fake, "pvc-lastgone", "backup-l2", ["l2"])
    backup(store, fake, "pvc-garbage", "backup-x", ["x"])
    root = bs.backupstore_root("")
    del fake.objects[bs.volume_cfg_key(root, "pvc-nocfg")]
    del fake.objects[bs.backup_cfg_key(root, "pvc-lastgone", "backup-l2")]
    fake.objects[bs.volume_cfg_key(root, "pvc-garbage")] = (b"{oops", fake.clock)
    # A volume directory under the wrong hash path: Longhorn looks for it elsewhere.
    fake.objects[root + "volumes/00/00/pvc-misplaced/volume.cfg"] = (b"{}", fake.clock)
    result, _inspector = inspect(fake, expected_volumes=["pvc-good", "pvc-nocfg", "pvc-lastgone", "pvc-absent"])

    kinds = {(problem["volume"], problem["kind"]) for problem in result["problems"]}
    assert kinds == {("pvc-nocfg", "missing_volume_cfg"), ("pvc-lastgone", "missing_last_backup"),
                     ("pvc-garbage", "invalid_volume_cfg"), ("pvc-misplaced", "misplaced_volume_dir")}
    assert sorted(by_name(result)) == ["pvc-good", "pvc-lastgone"]
    # The older backup is still complete: it becomes the newest one.
    assert by_name(result)["pvc-lastgone"]["last_backup_name"] == "backup-l1"
    assert result["missing"] == ["pvc-absent", "pvc-nocfg"]


def test_locks_active_and_stale(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    backup(store, fake, "pvc-bbb", "backup-1", ["b"])
    root = bs.backupstore_root("")
    volume_dir = bs.volume_dir(root, "pvc-aaa")
    fake.objects[volume_dir + "locks/lock-00000000000000aa.lck"] = (go_json({"Name": "lock-00000000000000aa", "Type": 2,
                                                                             "Acquired": True}), fake.clock - datetime.timedelta(seconds=30))
    fake.objects[bs.volume_dir(root, "pvc-bbb") + "locks/lock-00000000000000bb.lck"] = (
        go_json({"Name": "lock-00000000000000bb", "Type": 1, "Acquired": True}), fake.clock - datetime.timedelta(days=2))
    result, _inspector = inspect(fake)
    problems = {problem["volume"]: problem for problem in result["problems"]}
    assert problems["pvc-aaa"]["kind"] == "active_lock"
    assert "deletion, 30s old" in problems["pvc-aaa"]["message"]
    assert problems["pvc-bbb"]["kind"] == "stale_lock"
    assert "2d" in problems["pvc-bbb"]["message"]


# ---- integrity -------------------------------------------------------------------------------


def test_structure_finds_a_missing_block_without_downloading(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a", "b"])
    backup(store, fake, "pvc-aaa", "backup-2", ["a", "c"])
    key = bucket_faults.delete_block(store, "pvc-aaa", "backup-1")  # the block at offset 0, "a", in both backups
    fake.calls.clear()
    result, _inspector = inspect(fake, integrity="structure")
    integrity = result["integrity"]
    assert (integrity["checked_blocks"], integrity["missing_blocks"], integrity["corrupt_blocks"]) == (3, 1, 0)
    assert integrity["missing"] == [{"volume": "pvc-aaa", "block": key.rsplit("/", 1)[-1][:-4], "key": key,
                                     "reason": "missing from the bucket", "backups": ["backup-1", "backup-2"]}]
    assert integrity["damaged_backups"] == [{"volume": "pvc-aaa", "backup": "backup-1"}, {"volume": "pvc-aaa", "backup": "backup-2"}]
    assert not [key for key in fake.gets() if key.endswith(".blk")]
    assert not [call for call in fake.calls if call[0] == "HeadObject"]
    assert inv.findings(result)["integrity"] == 1


def test_full_finds_a_corrupt_block_and_reads_each_block_once(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a", "b"])
    backup(store, fake, "pvc-aaa", "backup-2", ["a", "c"])
    backup(store, fake, "pvc-zzz", "backup-1", ["a"], compression="gzip")  # same content, other volume: its own block
    key = bucket_faults.corrupt_block(store, "pvc-aaa", "backup-2")
    fake.calls.clear()
    result, _inspector = inspect(fake, integrity="full")
    integrity = result["integrity"]
    assert (integrity["checked_blocks"], integrity["missing_blocks"], integrity["corrupt_blocks"]) == (4, 0, 1)
    assert integrity["corrupt"][0]["key"] == key
    assert integrity["corrupt"][0]["backups"] == ["backup-1", "backup-2"]
    block_gets = [get for get in fake.gets() if get.endswith(".blk")]
    assert len(block_gets) == len(set(block_gets)) == 4
    assert integrity["bytes_read"] == sum(len(value[0]) for name, value in fake.objects.items() if name.endswith(".blk"))


def test_full_accepts_the_other_compression_and_checks_block_size(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"], compression="lz4")
    root = bs.backupstore_root("")
    checksum = hashlib.sha512(block("a")).hexdigest()[:64]
    key = bs.block_key(root, "pvc-aaa", checksum)
    import gzip  # pylint: disable=import-outside-toplevel
    fake.objects[key] = (gzip.compress(block("a")), fake.clock)  # gzip where the cfg says lz4: restore falls back
    result, _inspector = inspect(fake, integrity="full")
    assert (result["integrity"]["checked_blocks"], result["integrity"]["corrupt_blocks"]) == (1, 0)

    short = b"short block"
    short_sum = hashlib.sha512(short).hexdigest()[:64]
    cfg_key = bs.backup_cfg_key(root, "pvc-aaa", "backup-1")
    cfg = json.loads(fake.objects[cfg_key][0])
    cfg["Blocks"].append({"Offset": BLOCK, "BlockChecksum": short_sum})
    fake.objects[cfg_key] = (json.dumps(cfg).encode(), fake.objects[cfg_key][1])
    fake.objects[bs.block_key(root, "pvc-aaa", short_sum)] = (gzip.compress(short), fake.clock)
    result, _inspector = inspect(fake, integrity="full")
    assert result["integrity"]["corrupt_blocks"] == 1
    assert "block size" in result["integrity"]["corrupt"][0]["reason"]


def test_deep_check_survives_unreadable_cfgs_and_empty_volumes(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    backup(store, fake, "pvc-aaa", "backup-2", ["b"])
    backup(store, fake, "pvc-empty", "backup-gone", ["e"])
    store.delete_backup("pvc-empty", "backup-gone")  # volume.cfg stays, no backups, no blocks (ref §3.3 Deleting)
    root = bs.backupstore_root("")
    fake.objects[bs.backup_cfg_key(root, "pvc-aaa", "backup-1")] = (b"\x00garbage", fake.clock)
    fake.fail("GetObject", client_error("AccessDenied", "GetObject", 403), key=bs.backup_cfg_key(root, "pvc-aaa", "backup-2"),
              times=10)
    for level in ("structure", "full"):
        result, _inspector = inspect(fake, integrity=level)
        assert sorted((problem["volume"], problem["kind"]) for problem in result["problems"]) == [
            ("pvc-aaa", "invalid_backup_cfg"), ("pvc-aaa", "invalid_backup_cfg")]
        assert "AccessDenied" in " ".join(problem["message"] for problem in result["problems"])
        integrity = result["integrity"]
        assert (integrity["backups_read"], integrity["referenced_blocks"], integrity["checked_blocks"]) == (0, 0, 0)
        # Blocks no readable cfg references: leftovers as far as this check can tell.
        assert integrity["unreferenced_blocks"] == 2
        empty = by_name(result)["pvc-empty"]
        assert (empty["backup_count"], empty["last_backup_name"], empty["block_objects"]) == (0, None, 0)


def test_sampling_is_deterministic_per_seed(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["s%d" % number for number in range(40)])

    def verified(seed, percent):
        fake.calls.clear()
        result, _inspector = inspect(fake, integrity="full", sample_percent=percent, sample_seed=seed)
        assert result["integrity"]["sample_seed"] == (seed if percent < 100 else None)
        return sorted(get for get in fake.gets() if get.endswith(".blk")), result["integrity"]["checked_blocks"]

    first, count = verified(7, 50)
    assert first == verified(7, 50)[0]
    assert 10 <= count <= 30 and count == len(first)
    assert first != verified(8, 50)[0]
    assert verified(7, 100)[1] == 40


def test_sample_selection_spreads_over_blocks():
    chosen = sum(inv.sample_selected(3, "vol", "%064x" % number, 10) for number in range(5000))
    assert 400 <= chosen <= 600
    assert all(inv.sample_selected(None, "vol", "%064x" % number, 100) for number in range(10))


def test_system_backups(fake, store):
    zip_ok = b"zip-ok" * 1000
    store.write_system_backup("v1.10.2", "sb-ok", zip_ok, manager_image="m", engine_image="e", git_commit="c",
                              target_url="s3://backups@us-east-1/", created_at=START)
    store.write_system_backup("v1.10.2", "sb-bad", b"original", manager_image="m", engine_image="e", git_commit="c",
                              target_url="s3://backups@us-east-1/", created_at=START)
    store.write_system_backup("v1.9.1", "sb-nozip", b"gone", manager_image="m", engine_image="e", git_commit="c",
                              target_url="s3://backups@us-east-1/", created_at=START)
    root = bs.backupstore_root("")
    fake.objects[root + "system-backups/v1.10.2/sb-bad/system-backup.zip"] = (b"tampered", fake.clock)
    del fake.objects[root + "system-backups/v1.9.1/sb-nozip/system-backup.zip"]
    fake.objects[root + "system-backups/v1.10.2/sb-half/system-backup.zip"] = (b"upload cut", fake.clock)

    quick, _inspector = inspect(fake)
    assert [(item["name"], item["version"], item["checksum"]) for item in quick["system_backups"]] == [
        ("sb-bad", "v1.10.2", "not_checked"), ("sb-ok", "v1.10.2", "not_checked"), ("sb-nozip", "v1.9.1", "missing_zip")]
    assert quick["system_backups"][1]["created"] == "2026-03-01T12:00:00Z"
    assert [problem["kind"] for problem in quick["problems"]] == ["incomplete_system_backup"]
    assert quick["integrity"]["system_backup_failures"] == 1
    full, _inspector = inspect(fake, integrity="full")
    assert [item["checksum"] for item in full["system_backups"]] == ["mismatch", "ok", "missing_zip"]
    assert full["integrity"]["system_backup_failures"] == 2


# ---- bucket settings, access, write probe ----------------------------------------------------


def test_bucket_settings_and_forbidden_policies(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    fake.settings["GetBucketVersioning"] = {"Status": "Enabled"}
    fake.settings["GetObjectLockConfiguration"] = {"ObjectLockConfiguration": {
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}}}}
    fake.settings["GetBucketLifecycleConfiguration"] = {"Rules": [
        {"ID": "expire-all", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 30}},
        {"ID": "other-prefix", "Status": "Enabled", "Filter": {"Prefix": "exports/"}, "Expiration": {"Days": 1}},
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "tmp", "Value": "1"}}, "Expiration": {"Days": 1}},
        {"ID": "disabled", "Status": "Disabled", "Filter": {}, "Expiration": {"Days": 1}},
        {"ID": "legacy", "Status": "Enabled", "Prefix": "backupstore/volumes/", "NoncurrentVersionExpiration": {"NoncurrentDays": 5}},
    ]}
    result, _inspector = inspect(fake)
    settings = result["bucket_settings"]
    assert (settings["versioning"], settings["mfa_delete"]) == ("Enabled", "Disabled")
    assert settings["object_lock"] == {"enabled": True, "default_retention": {"mode": "GOVERNANCE", "period": 30, "unit": "days"}}
    assert [(rule["id"], rule["applies_to_backupstore"]) for rule in settings["lifecycle_rules"]] == [
        ("expire-all", True), ("other-prefix", False), ("tagged", False), ("disabled", False), ("legacy", True)]
    assert settings["lifecycle_rules"][4]["actions"] == ["NoncurrentVersionExpiration"]
    problems = {problem["kind"]: problem for problem in result["problems"]}
    assert sorted(problems) == ["lifecycle_rules", "retention_policy"]
    assert problems["lifecycle_rules"]["volume"] is None
    assert "expire-all, legacy" in problems["lifecycle_rules"]["message"]


def test_unreadable_settings_become_warnings(fake):
    fake.fail("GetObjectLockConfiguration", client_error("NotImplemented", "GetObjectLockConfiguration", 501))
    fake.fail("GetBucketLifecycleConfiguration", client_error("AccessDenied", "GetBucketLifecycleConfiguration", 403))
    result, inspector = inspect(fake)
    assert result["bucket_settings"]["object_lock"] is None
    assert result["bucket_settings"]["lifecycle_rules"] is None
    assert result["bucket_settings"]["versioning"] == "Disabled"
    assert any("GetObjectLockConfiguration is not supported by your storage provider" in text for text in inspector.warnings)
    assert any("AccessDenied" in text and "lifecycle" in text for text in inspector.warnings)
    assert result["problems"] == []


@pytest.mark.parametrize("exc, expected", [
    (client_error("InvalidAccessKeyId", "ListObjectsV2", 403), {"reachable": True, "credentials_valid": False, "bucket_exists": None}),
    (client_error("SignatureDoesNotMatch", "ListObjectsV2", 403), {"reachable": True, "credentials_valid": False, "bucket_exists": None}),
    (client_error("AccessDenied", "ListObjectsV2", 403), {"reachable": True, "credentials_valid": True, "bucket_exists": None}),
    (client_error("NoSuchBucket", "ListObjectsV2", 404), {"reachable": True, "credentials_valid": True, "bucket_exists": False}),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), {"reachable": False, "credentials_valid": None, "bucket_exists": None}),
])
def test_access_failures(fake, exc, expected):
    fake.fail("ListObjectsV2", exc, times=10)
    result, _inspector = inspect(fake, expected_volumes=["pvc-b", "pvc-a"], max_age=60)
    access = result["access"]
    assert {key: access[key] for key in expected} == expected
    assert access["readable"] is False
    assert access["error_code"] == (exc.response["Error"]["Code"] if isinstance(exc, ClientError) else "EndpointConnectionError")
    assert access["error"].startswith("Failed to list objects in bucket backups")
    # Unknown means not protected: every expected volume is missing.
    assert result["missing"] == ["pvc-a", "pvc-b"]
    assert result["volumes"] == [] and result["capacity"] is None
    assert inv.findings(result)["unreachable"] is True
    assert not [call for call in fake.calls if call[0] != "ListObjectsV2"]


def test_transient_errors_are_retried(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    cfg_key = bs.volume_cfg_key(bs.backupstore_root(""), "pvc-aaa")
    fake.fail("GetObject", client_error("SlowDown", "GetObject", 503), key=cfg_key, times=2)
    fake.fail("ListObjectsV2", client_error("InternalError", "ListObjectsV2", 500))
    fake.calls.clear()
    result, _inspector = inspect(fake)
    assert result["access"]["readable"] is True
    assert by_name(result)["pvc-aaa"]["last_backup_name"] == "backup-1"
    assert fake.gets().count(cfg_key) == 3


def test_write_probe_puts_reads_and_deletes(fake):
    before = dict(fake.objects)
    result, _inspector = inspect(fake, write_probe=True)
    probe = result["write_probe"]
    assert (probe["performed"], probe["put"], probe["get"], probe["delete"], probe["ok"]) == (True, True, True, True, True)
    assert probe["key"].startswith("backupstore/" + inv.WRITE_PROBE_NAME)
    writes = [call for call in fake.calls if call[0] in ("PutObject", "DeleteObject")]
    assert writes == [("PutObject", probe["key"]), ("DeleteObject", probe["key"])]
    assert fake.objects == before


def test_write_probe_failures_are_problems(fake):
    fake.fail("PutObject", client_error("AccessDenied", "PutObject", 403))
    result, _inspector = inspect(fake, write_probe=True)
    assert (result["write_probe"]["ok"], result["write_probe"]["error_code"]) == (False, "AccessDenied")
    assert [problem["kind"] for problem in result["problems"]] == ["write_probe_failed"]
    assert "put step" in result["problems"][0]["message"]

    fake.fail("DeleteObject", client_error("AccessDenied", "DeleteObject", 403))
    result, _inspector = inspect(fake, write_probe=True)
    probe = result["write_probe"]
    assert (probe["put"], probe["get"], probe["delete"], probe["error_code"]) == (True, True, False, "AccessDenied")
    assert "left behind" in result["problems"][0]["message"]
    assert probe["key"] in fake.objects


def test_write_probe_not_requested(fake):
    result, _inspector = inspect(fake)
    assert result["write_probe"]["performed"] is False
    assert result["write_probe"]["skipped_reason"] == "not requested"
    assert not [call for call in fake.calls if call[0] in ("PutObject", "DeleteObject")]


# ---- prefix, capacity, freshness -------------------------------------------------------------


def test_prefix_and_capacity_projection(fake):
    store = BackupStore(fake, fake.bucket, "cluster-a")
    backup(store, fake, "pvc-aaa", "backup-1", ["a", "b"])
    backup(store, fake, "pvc-aaa", "backup-2", ["a", "c"])
    fake.objects["exports/cluster-state.tar"] = (b"x" * 1000, fake.clock)       # outside the backupstore
    fake.objects["backupstore/volumes/11/22/pvc-other/volume.cfg"] = (b"{}", fake.clock)  # another target's root
    result, _inspector = inspect(fake, prefix="/cluster-a/")
    assert result["backupstore_prefix"] == "cluster-a/backupstore/"
    assert sorted(by_name(result)) == ["pvc-aaa"]
    capacity = result["capacity"]
    assert capacity["stored_bytes"] == sum(len(value[0]) for key, value in fake.objects.items() if key.startswith("cluster-a/"))
    assert capacity["block_objects"] == 3
    assert capacity["measured_compression_ratio"] == round(capacity["block_bytes"] / (3 * BLOCK), 4)
    assert capacity["measured_compression_ratio"] < 0.1  # the test blocks repeat a short pattern
    # Default projection: each volume's backups x measured ratio x size.
    assert capacity["projected_bytes"] == int(2 * BLOCK * capacity["measured_compression_ratio"] * 2)
    result, _inspector = inspect(fake, prefix="cluster-a", retained_backups=7, compression_ratio=0.5)
    assert (result["capacity"]["projected_bytes"], result["capacity"]["retained_backups"]) == (2 * BLOCK * 7 // 2, 7)
    assert result["volumes"][0]["projected_bytes"] == 7 * BLOCK


def test_freshness_against_the_server_clock(fake, store):
    backup(store, fake, "pvc-old", "backup-1", ["a"])
    fake.tick(86400)
    backup(store, fake, "pvc-new", "backup-1", ["b"])
    writer = store.begin_backup("pvc-never", "backup-first", compression="lz4", volume_size=BLOCK, labels={})
    writer.abort()
    fake.tick(600)
    result, _inspector = inspect(fake, max_age=3600, expected_volumes=["pvc-new", "pvc-never"])
    assert result["stale"] == ["pvc-never", "pvc-old"]
    assert result["missing"] == ["pvc-never"]
    assert by_name(result)["pvc-never"]["last_backup_name"] is None
    assert by_name(result)["pvc-new"]["last_backup_age"] == 600
    no_age, _inspector = inspect(fake)
    assert no_age["stale"] == [] and no_age["missing"] == []


# ---- options and summaries -------------------------------------------------------------------


@pytest.mark.parametrize("value, seconds", [
    (3600, 3600), ("3600", 3600), ("90s", 90), ("30m", 1800), ("24h", 86400), ("1d", 86400), ("2w", 1209600),
    ("1h30m", 5400), (" 1D ", 86400), (7200.0, 7200),
])
def test_parse_max_age(value, seconds):
    assert inv.parse_max_age(value) == seconds


@pytest.mark.parametrize("value", ["24 hours", "1.5h", "h", "-1h", "0", 0, -5, True, "1y", ""])
def test_parse_max_age_names_a_bad_value(value):
    with pytest.raises(inv.InvalidOption) as error:
        inv.parse_max_age(value)
    assert str(error.value).startswith("max_age: ")
    assert repr(value) in str(error.value)


def test_stub_size_limit_separates_stubs_from_complete_cfgs(fake, store):
    backup(store, fake, "pvc-a", "backup-x", [])  # a complete backup of an empty volume: the smallest complete cfg
    writer = store.begin_backup("pvc-a", "backup-y", compression="none", volume_size=BLOCK, labels=None)
    root = bs.backupstore_root("")
    complete = len(fake.objects[bs.backup_cfg_key(root, "pvc-a", "backup-x")][0])
    stub = len(fake.objects[bs.backup_cfg_key(root, "pvc-a", "backup-y")][0])
    assert stub <= inv.stub_size_limit("pvc-a", "backup-y")
    assert complete > inv.stub_size_limit("pvc-a", "backup-x")
    writer.abort()


def test_failure_summary_names_what_failed(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    bucket_faults.delete_block(store, "pvc-aaa")
    fake.tick(7200)
    result, _inspector = inspect(fake, integrity="structure", max_age=3600, expected_volumes=["pvc-aaa", "pvc-zzz"])
    assert inv.failure_summary(result, []) is None
    summary = inv.failure_summary(result, ["unreachable", "stale", "missing", "integrity", "problems"], 3600)
    assert summary.startswith("Bucket check failed on ")
    assert "stale: 1 volume(s) without a complete backup newer than 1h (pvc-aaa)" in summary
    assert "missing: 1 expected volume(s) without a complete backup in the bucket (pvc-zzz)" in summary
    assert "integrity: 1 missing block(s); 1 damaged backup(s): pvc-aaa/backup-1" in summary
    assert "unreachable" not in summary and "problems" not in summary
    assert inv.failure_summary(result, ["problems", "unreachable"]) is None


def test_failure_summary_lists_few_names():
    result = {"access": {"readable": True, "error": None}, "stale": ["v%d" % number for number in range(8)], "missing": [],
              "integrity": inv._empty_integrity("none", 100, None),  # pylint: disable=protected-access
              "problems": [{"volume": None, "kind": "lifecycle_rules", "message": "m"}], "system_backups": []}
    summary = inv.failure_summary(result, ["stale", "problems"], 86400)
    assert "(v0, v1, v2, v3, v4 and 3 more)" in summary
    assert "newer than 1d" in summary
    assert "problems: 1 (lifecycle_rules)" in summary


def test_format_duration():
    assert [inv.format_duration(value) for value in (0, 59, 3600, 93784)] == ["0s", "59s", "1h", "1d2h3m4s"]


# ---- against the lab's S3 server -------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server():
    with S3Server() as server:
        yield server


def lab_client(server, **overrides):
    params = {"endpoint_url": server.endpoint, "access_key": server.access_key, "secret_key": server.secret_key,
              "region": server.region}
    params.update(overrides)
    return s3_client(params, max_pool_connections=8)


def test_real_server_inventory_and_integrity(s3_server):
    store = BackupStore(s3_server.client(), s3_server.bucket, "real")
    now = datetime.datetime.now(UTC)
    for index in range(3):
        name = "pvc-real-%d" % index
        writer = store.begin_backup(name, "backup-real-%d" % index, compression=("lz4", "gzip", "none")[index],
                                    volume_size=2 * BLOCK, labels=labels_for(name, "real"))
        writer.write_image(block("r%d" % index) + block("s%d" % index))
        writer.finish(snapshot_name="s", snapshot_created_at=now, created_at=now, volume_size=2 * BLOCK,
                      labels=labels_for(name, "real"))
    store.put("real/backupstore/volumes/aa/bb/pvc-misplaced/volume.cfg", b"{}")
    inspector = inv.BucketInspector(lab_client(s3_server), s3_server.bucket, "real", concurrency=8)
    result = inspector.run(integrity="full", max_age=3600)
    assert result["access"]["readable"] is True
    assert [volume["pvc_namespace"] for volume in result["volumes"]] == ["real"] * 3
    assert [volume["compression"] for volume in result["volumes"]] == ["lz4", "gzip", "none"]
    assert result["integrity"]["checked_blocks"] == 6 and result["integrity"]["corrupt_blocks"] == 0
    assert result["capacity"]["object_count"] == 3 * (1 + 1 + 2) + 1  # volume.cfg, backup cfg, 2 blocks; misplaced cfg
    assert {problem["kind"] for problem in result["problems"]} == {"misplaced_volume_dir"}
    assert result["stale"] == []


@pytest.mark.parametrize("overrides, code, credentials_valid", [
    ({"access_key": "AKIAWRONGWRONGWRONG0"}, "InvalidAccessKeyId", False),
    ({"secret_key": "wrong-secret-value-for-tests"}, "SignatureDoesNotMatch", False),
])
def test_real_server_tells_bad_credentials_apart(s3_server, overrides, code, credentials_valid):
    result = inv.BucketInspector(lab_client(s3_server, **overrides), s3_server.bucket, retries=0).run()
    assert (result["access"]["error_code"], result["access"]["credentials_valid"]) == (code, credentials_valid)
    assert s3_server.secret_key not in json.dumps(result)
    assert "wrong-secret-value-for-tests" not in json.dumps(result)


def test_real_server_missing_bucket(s3_server):
    result = inv.BucketInspector(lab_client(s3_server), "no-such-bucket", retries=0).run()
    assert (result["access"]["error_code"], result["access"]["bucket_exists"]) == ("NoSuchBucket", False)


# ---- the cluster-state exports (cluster_state_prefix) -----------------------------------------------


def manifest(exported_at, fmt="homelab.longhorn_dr/cluster-state/v1"):
    return json.dumps({"format": fmt, "exported_at": exported_at, "files": {}, "volumes": []}).encode()


def test_cluster_state_newest_export_is_read(fake):
    store = BackupStore(fake, fake.bucket, "cluster-a")
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    fake.objects["cluster-state/20260301T090000Z/manifest.json"] = (manifest("2026-03-01T09:00:00Z"), fake.clock)
    fake.objects["cluster-state/20260301T110000Z/pvcs.yaml"] = (b"items: []", fake.clock)
    fake.objects["cluster-state/20260301T110000Z/manifest.json"] = (manifest("2026-03-01T11:00:00.5Z"), fake.clock)
    fake.objects["cluster-state/20260301T120000Z/pvcs.yaml"] = (b"items: []", fake.clock)  # upload still running: no manifest
    fake.objects["cluster-state/notes/old/manifest.json"] = (b"x", fake.clock)  # not an export folder
    result, _inspector = inspect(fake, prefix="cluster-a", cluster_state_prefix="/cluster-state")
    # The fake server's clock is START + 60 s (one backup); its Date header measures the age.
    assert result["cluster_state"] == {"found": True, "key": "cluster-state/20260301T110000Z/manifest.json",
                                       "exported_at": "2026-03-01T11:00:00Z", "age_seconds": 3660,
                                       "format": "homelab.longhorn_dr/cluster-state/v1", "error": None, "exports": 2}
    assert fake.gets("manifest.json") == ["cluster-state/20260301T110000Z/manifest.json"]
    assert sorted(by_name(result)) == ["pvc-aaa"]  # the exports are outside the backupstore
    unrequested, _inspector = inspect(fake, prefix="cluster-a")
    assert unrequested["cluster_state"] is None
    assert len(fake.gets("manifest.json")) == 1  # not read again


def test_cluster_state_none_is_not_an_error(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    result, _inspector = inspect(fake, cluster_state_prefix="cluster-state/")
    assert result["cluster_state"] == {"found": False, "key": None, "exported_at": None, "age_seconds": None,
                                       "format": None, "error": None, "exports": 0}
    assert result["access"]["readable"] is True
    # At the bucket root the backupstore's objects are not mistaken for exports.
    assert inspect(fake, cluster_state_prefix="")[0]["cluster_state"]["exports"] == 0


@pytest.mark.parametrize("body, error", [
    (b"{not json", "cluster-state/20260301T110000Z/manifest.json is not valid JSON: "),
    (b"[1, 2]", "cluster-state/20260301T110000Z/manifest.json is not a JSON object"),
    (manifest(None), "cluster-state/20260301T110000Z/manifest.json has no valid exported_at time (None)"),
    (manifest("yesterday"), "cluster-state/20260301T110000Z/manifest.json has no valid exported_at time ('yesterday')"),
])
def test_cluster_state_malformed_manifest_sets_error(fake, body, error):
    fake.objects["cluster-state/20260301T110000Z/manifest.json"] = (body, fake.clock)
    state = inspect(fake, cluster_state_prefix="cluster-state/")[0]["cluster_state"]
    assert state["found"] is True and state["error"].startswith(error), state
    assert state["exported_at"] is None and state["age_seconds"] is None


def test_cluster_state_unreadable_bucket_or_object(fake):
    key = "cluster-state/20260301T110000Z/manifest.json"
    fake.objects[key] = (manifest("2026-03-01T11:00:00Z"), fake.clock)
    fake.fail("GetObject", client_error("AccessDenied", "GetObject", 403), key=key, times=10)
    state = inspect(fake, cluster_state_prefix="cluster-state/")[0]["cluster_state"]
    assert (state["found"], state["key"], state["error"]) == (False, key, "Failed to get object %s: AccessDenied" % key)
    fake.fail("ListObjectsV2", client_error("InvalidAccessKeyId", "ListObjectsV2", 403), times=10)
    result = inspect(fake, cluster_state_prefix="cluster-state/")[0]
    assert result["cluster_state"]["found"] is False
    assert result["cluster_state"]["error"] == ("not read: the bucket could not be listed "
                                                "(Failed to list objects in bucket backups: InvalidAccessKeyId)")


# ---- evidence the gate relies on (issue 10) ----------------------------------------------------


def test_per_volume_damage_names_each_backup_with_exact_counts(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a", "b"])
    backup(store, fake, "pvc-aaa", "backup-2", ["a", "c"])
    backup(store, fake, "pvc-bbb", "backup-1", ["x"])
    bucket_faults.delete_block(store, "pvc-aaa", "backup-1")   # "a": both backups of pvc-aaa reference it
    result, _inspector = inspect(fake, integrity="structure")
    volumes = by_name(result)
    assert volumes["pvc-aaa"]["integrity_checked"] is True
    assert volumes["pvc-aaa"]["damaged_backups"] == [
        {"backup": "backup-1", "missing_blocks": 1, "corrupt_blocks": 0},
        {"backup": "backup-2", "missing_blocks": 1, "corrupt_blocks": 0}]
    assert (volumes["pvc-bbb"]["integrity_checked"], volumes["pvc-bbb"]["damaged_backups"]) == (True, [])
    quick, _inspector = inspect(fake)
    assert {entry["name"]: (entry["integrity_checked"], entry["damaged_backups"]) for entry in quick["volumes"]} == {
        "pvc-aaa": (False, []), "pvc-bbb": (False, [])}


def test_an_unreadable_backup_cfg_is_named_on_its_volume(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    root = bs.backupstore_root("")
    fake.objects[bs.backup_cfg_key(root, "pvc-aaa", "backup-1")] = (b"\x00garbage", fake.clock)
    result, _inspector = inspect(fake, integrity="structure")
    assert by_name(result)["pvc-aaa"]["unreadable_backups"] == ["backup-1"]


def test_a_backup_from_the_future_keeps_its_negative_age_and_is_stale(fake, store):
    backup(store, fake, "pvc-aaa", "backup-1", ["a"])
    fake.tick(-2 * 86400)       # the S3 server's clock now lies two days before the backup's snapshot time
    result, _inspector = inspect(fake, max_age=86400)
    assert by_name(result)["pvc-aaa"]["last_backup_age"] == -2 * 86400
    assert result["stale"] == ["pvc-aaa"]


def test_a_listing_cut_short_is_an_error_not_the_end(fake, store):
    for index in range(4):
        backup(store, fake, "pvc-%03d" % index, "backup-1", [str(index)])
    real = fake.list_objects_v2

    def no_token(**kwargs):
        page = real(**kwargs)
        page.pop("NextContinuationToken", None)
        return page
    fake.list_objects_v2 = no_token
    result, _inspector = inspect(fake, integrity="structure", cluster_state_prefix="cluster-state/")
    assert result["access"]["readable"] is False
    assert result["access"]["error_code"] == "TruncatedListing"
    assert "the listing was cut short" in result["access"]["error"]
    assert result["volumes"] == []


def test_system_backups_carry_their_recorded_target_url(fake):
    store = BackupStore(fake, fake.bucket)
    store.write_system_backup("v1.10.2", "sb-1", b"zip", manager_image="m", engine_image="e", git_commit="g",
                              target_url="s3://backups@us-east-1/", created_at=fake.clock)
    result, _inspector = inspect(fake)
    assert [(entry["name"], entry["backup_target_url"]) for entry in result["system_backups"]] == [
        ("sb-1", "s3://backups@us-east-1/")]
