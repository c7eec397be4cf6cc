# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Longhorn backupstore writer and reader against the lab S3 server.

What the writer produces is checked with plain boto3, json, lz4.frame, gzip and hashlib, as
Longhorn and the collection's bucket check would read it (ref §3.3), not with BackupStore.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import lz4.frame
import pytest

from tests.lab.longhorn import volumedata
from tests.lab.longhorn.backupstore import (
    BackupStore,
    BackupStoreError,
    CorruptBlock,
    LockError,
    MissingBlock,
    decode_backup_url,
    encode_backup_url,
    volume_hash_path,
)
from tests.lab.s3 import S3Server

BS = volumedata.BLOCK_SIZE
VOLUME_SIZE = 8 * BS
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BACKUP_CFG_KEYS = ["Name", "VolumeName", "SnapshotName", "SnapshotCreatedAt", "CreatedTime", "Size", "Labels",
                   "Parameters", "IsIncremental", "CompressionMethod", "NewlyUploadedDataSize", "ReUploadedDataSize",
                   "ProcessingBlocks", "Blocks", "SingleFile"]
VOLUME_CFG_KEYS = ["Name", "Size", "Labels", "CreatedTime", "LastBackupName", "LastBackupAt", "BlockCount",
                   "BackingImageName", "BackingImageChecksum", "CompressionMethod", "StorageClassName", "DataEngine"]
T1 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
T2 = datetime.datetime(2026, 1, 3, 3, 4, 5, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def s3_server():
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def prefix():
    # Each test gets its own target path, so tests do not see each other's volumes.
    return "t-%s/" % uuid.uuid4().hex[:8]


@pytest.fixture
def store(s3, s3_server, prefix):
    return BackupStore(s3, s3_server.bucket, prefix)


# --- an independent reader: what a user of the bucket sees ------------------------------------


def sha512_64(data):
    return hashlib.sha512(data).hexdigest()[:64]


def raw_json(s3, bucket, key):
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


def volume_dir(prefix, volume):
    digest = hashlib.sha512(volume.encode()).hexdigest()
    return "%sbackupstore/volumes/%s/%s/%s/" % (prefix, digest[0:2], digest[2:4], volume)


def block_key(prefix, volume, checksum):
    return "%sblocks/%s/%s/%s.blk" % (volume_dir(prefix, volume), checksum[0:2], checksum[2:4], checksum)


def image_of(blocks):
    """A volume image with the given {block index: fill byte}."""
    image = bytearray(VOLUME_SIZE)
    for index, fill in blocks.items():
        image[index * BS:(index + 1) * BS] = bytes([fill]) * BS
    return bytes(image)


def do_backup(store, volume, backup, image, *, snapshot=None, when=T1, labels=None, **begin):
    writer = store.begin_backup(volume, backup, volume_size=VOLUME_SIZE, created_at=when, **begin)
    writer.write_image(image)
    return writer.finish(snapshot_name=snapshot or "snap-" + backup, snapshot_created_at=when, created_at=when,
                         volume_size=VOLUME_SIZE, labels=labels if labels is not None else {"backup": backup},
                         backup_mode=begin.get("backup_mode", "incremental"))


# --- tests ------------------------------------------------------------------------------------


def test_volume_path_follows_reference_example(s3, s3_server):
    # ref §3.3: pvc-0123abcd-test -> volumes/a7/9b/pvc-0123abcd-test/
    assert volume_hash_path("pvc-0123abcd-test") == "a7/9b"
    assert BackupStore(s3, s3_server.bucket, "").volume_path("pvc-0123abcd-test") == \
        "backupstore/volumes/a7/9b/pvc-0123abcd-test/"
    assert BackupStore(s3, s3_server.bucket, "/foo").volume_path("pvc-0123abcd-test") == \
        "foo/backupstore/volumes/a7/9b/pvc-0123abcd-test/"


def test_backup_written_like_longhorn(s3, s3_server, store, prefix):
    volume = "pvc-0123abcd-test"
    image = image_of({0: 1, 3: 2, 5: 1})
    labels = {"KubernetesStatus": '{"namespace":"app","pvcName":"data"}', "longhorn.io/volume-access-mode": "rwo",
              "note": "a<b&c>"}
    cfg = do_backup(store, volume, "backup-1", image, labels=labels, storage_class_name="longhorn")
    bucket, vdir = s3_server.bucket, volume_dir(prefix, volume)
    assert vdir.endswith("backupstore/volumes/a7/9b/pvc-0123abcd-test/")

    volume_raw = s3.get_object(Bucket=bucket, Key=vdir + "volume.cfg")["Body"].read()
    volume_cfg = json.loads(volume_raw)
    assert list(volume_cfg) == VOLUME_CFG_KEYS
    # Size and BlockCount are JSON strings; the string fields are double-encoded (ref §3.3 volume.cfg).
    assert volume_cfg["Size"] == str(VOLUME_SIZE)
    assert volume_cfg["BlockCount"] == "2"
    assert volume_cfg["CompressionMethod"] == '"lz4"'
    assert volume_cfg["BackingImageName"] == '""'
    assert json.loads(volume_cfg["StorageClassName"]) == "longhorn"
    assert json.loads(volume_cfg["DataEngine"]) == "v1"
    assert volume_cfg["LastBackupName"] == "backup-1"
    assert volume_cfg["LastBackupAt"] == "2026-01-02T03:04:05Z"
    assert RFC3339_UTC.match(volume_cfg["CreatedTime"])
    assert volume_cfg["Labels"] == labels
    # Go's encoder escapes <, > and & in strings.
    assert b"a\\u003cb\\u0026c\\u003e" in volume_raw and b"a<b" not in volume_raw

    backup_cfg = raw_json(s3, bucket, vdir + "backups/backup_backup-1.cfg")
    assert list(backup_cfg) == BACKUP_CFG_KEYS
    assert backup_cfg["Name"] == "backup-1" and backup_cfg["VolumeName"] == volume
    assert backup_cfg["SnapshotName"] == "snap-backup-1"
    assert backup_cfg["SnapshotCreatedAt"] == backup_cfg["CreatedTime"] == "2026-01-02T03:04:05Z"
    assert backup_cfg["Size"] == str(3 * BS)
    assert backup_cfg["Parameters"] == {"backup-mode": "incremental", "backup-block-size": str(BS)}
    assert backup_cfg["IsIncremental"] is False
    assert backup_cfg["CompressionMethod"] == "lz4"
    assert backup_cfg["ReUploadedDataSize"] == "0"
    assert backup_cfg["SingleFile"] == {"FilePath": ""}
    assert [block["Offset"] for block in backup_cfg["Blocks"]] == [0, 3 * BS, 5 * BS]

    for block in backup_cfg["Blocks"]:
        payload = s3.get_object(Bucket=bucket, Key=block_key(prefix, volume, block["BlockChecksum"]))["Body"].read()
        data = lz4.frame.decompress(payload)
        assert sha512_64(data) == block["BlockChecksum"]
        assert data == image[block["Offset"]:block["Offset"] + BS]
    # Blocks 0 and 5 have the same content: one object, counted once.
    assert len(keys_under(s3, bucket, vdir + "blocks/")) == 2
    distinct = {block["BlockChecksum"] for block in backup_cfg["Blocks"]}
    sizes = {c: s3.head_object(Bucket=bucket, Key=block_key(prefix, volume, c))["ContentLength"] for c in distinct}
    assert int(backup_cfg["NewlyUploadedDataSize"]) == sum(sizes.values())
    # The writer hands back the same cfg, decoded.
    assert cfg["Blocks"] == backup_cfg["Blocks"] and cfg["Size"] == 3 * BS
    assert keys_under(s3, bucket, vdir + "locks/") == []


def test_stub_cfg_and_lock_while_backup_runs(s3, s3_server, store, prefix):
    volume, bucket = "pvc-midway", s3_server.bucket
    vdir = volume_dir(prefix, volume)
    writer = store.begin_backup(volume, "backup-mid", volume_size=VOLUME_SIZE, labels={"a": "b"})
    writer.upload_block(0, b"\x05" * BS)

    stub = raw_json(s3, bucket, vdir + "backups/backup_backup-mid.cfg")
    # ref §3.3: the stub has only Name, VolumeName and CompressionMethod; CreatedTime empty.
    assert stub["CreatedTime"] == "" and stub["SnapshotName"] == ""
    assert stub["Name"] == "backup-mid" and stub["VolumeName"] == volume and stub["CompressionMethod"] == "lz4"
    assert "Blocks" not in stub and stub["Labels"] is None and stub["Parameters"] is None
    # addVolume wrote volume.cfg before any block, with no last backup yet.
    volume_cfg = raw_json(s3, bucket, vdir + "volume.cfg")
    assert volume_cfg["LastBackupName"] == "" and volume_cfg["BlockCount"] == "0"

    lock_keys = keys_under(s3, bucket, vdir + "locks/")
    assert len(lock_keys) == 1
    lock_name = re.match(r"^.*/locks/(lock-[0-9a-f]{16})\.lck$", lock_keys[0]).group(1)
    assert raw_json(s3, bucket, lock_keys[0]) == {"Name": lock_name, "Type": 1, "Acquired": True}
    assert [lock["Name"] for lock in store.active_locks(volume)] == [lock_name]

    writer.finish(snapshot_name="snap", snapshot_created_at=T1, created_at=T1, volume_size=VOLUME_SIZE, labels={})
    assert keys_under(s3, bucket, vdir + "locks/") == []
    assert raw_json(s3, bucket, vdir + "backups/backup_backup-mid.cfg")["CreatedTime"] == "2026-01-02T03:04:05Z"


def test_stale_locks_are_not_active(store):
    writer = store.begin_backup("pvc-stale", "backup-1", volume_size=VOLUME_SIZE)
    writer.abort(leave_lock=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert len(store.active_locks("pvc-stale", now=now)) == 1
    # ref §3.3 Lock files: older than 150 s means a leftover.
    assert store.active_locks("pvc-stale", now=now + datetime.timedelta(seconds=151)) == []


def test_incremental_backup_reuses_blocks(s3, s3_server, store, prefix):
    volume, bucket = "pvc-incr", s3_server.bucket
    vdir = volume_dir(prefix, volume)
    do_backup(store, volume, "backup-1", image_of({0: 1, 1: 2, 2: 3}))
    blocks_before = set(keys_under(s3, bucket, vdir + "blocks/"))

    do_backup(store, volume, "backup-2", image_of({0: 1, 1: 9, 2: 3}), when=T2)

    second = raw_json(s3, bucket, vdir + "backups/backup_backup-2.cfg")
    new_blocks = set(keys_under(s3, bucket, vdir + "blocks/")) - blocks_before
    changed = sha512_64(b"\x09" * BS)
    assert new_blocks == {block_key(prefix, volume, changed)}
    assert second["IsIncremental"] is True
    assert second["ProcessingBlocks"] is None
    assert int(second["NewlyUploadedDataSize"]) == s3.head_object(Bucket=bucket, Key=block_key(prefix, volume, changed))["ContentLength"]
    # The full block map, including blocks inherited from backup-1 (ref §3.3).
    assert [(b["Offset"], b["BlockChecksum"]) for b in second["Blocks"]] == [
        (0, sha512_64(b"\x01" * BS)), (BS, changed), (2 * BS, sha512_64(b"\x03" * BS))]
    volume_cfg = raw_json(s3, bucket, vdir + "volume.cfg")
    assert volume_cfg["BlockCount"] == "4"
    assert volume_cfg["LastBackupName"] == "backup-2" and volume_cfg["LastBackupAt"] == "2026-01-03T03:04:05Z"
    assert volume_cfg["Labels"] == {"backup": "backup-2"}
    assert volume_cfg["CreatedTime"] == "2026-01-02T03:04:05Z"


def test_incremental_backup_records_removed_data_as_zero_blocks(store):
    volume = "pvc-shrink"
    do_backup(store, volume, "backup-1", image_of({0: 1, 4: 2}))
    # A shorter image, as image_from_dir gives for less content.
    do_backup(store, volume, "backup-2", image_of({0: 1})[:2 * BS], when=T2)

    image, size = store.read_image(volume, "backup-2")
    assert size == VOLUME_SIZE
    assert image == image_of({0: 1})
    assert store.read_image(volume, "backup-1")[0] == image_of({0: 1, 4: 2})


def test_full_mode_reuploads_existing_blocks(s3, s3_server, store, prefix):
    volume = "pvc-full"
    do_backup(store, volume, "backup-1", image_of({0: 1, 1: 2}))
    do_backup(store, volume, "backup-2", image_of({0: 1, 1: 2}), when=T2, backup_mode="full")

    second = raw_json(s3, s3_server.bucket, volume_dir(prefix, volume) + "backups/backup_backup-2.cfg")
    assert second["Parameters"]["backup-mode"] == "full"
    assert second["IsIncremental"] is False
    assert second["NewlyUploadedDataSize"] == "0"
    assert int(second["ReUploadedDataSize"]) > 0
    assert raw_json(s3, s3_server.bucket, volume_dir(prefix, volume) + "volume.cfg")["BlockCount"] == "2"


@pytest.mark.parametrize("method", ["gzip", "none"])
def test_other_compression_methods(s3, s3_server, store, prefix, method):
    volume = "pvc-" + method
    image = image_of({1: 7})
    do_backup(store, volume, "backup-1", image, compression=method)

    cfg = raw_json(s3, s3_server.bucket, volume_dir(prefix, volume) + "backups/backup_backup-1.cfg")
    assert cfg["CompressionMethod"] == method
    (block,) = cfg["Blocks"]
    payload = s3.get_object(Bucket=s3_server.bucket, Key=block_key(prefix, volume, block["BlockChecksum"]))["Body"].read()
    data = gzip.decompress(payload) if method == "gzip" else payload
    assert sha512_64(data) == block["BlockChecksum"] and data == image[BS:2 * BS]
    assert store.read_image(volume, "backup-1")[0] == image


def test_stored_compression_method_sticks(s3, s3_server, store, prefix):
    # CreateDeltaBlockBackup takes the method from the existing volume.cfg.
    do_backup(store, "pvc-sticky", "backup-1", image_of({0: 1}), compression="lz4")
    do_backup(store, "pvc-sticky", "backup-2", image_of({0: 2}), when=T2, compression="gzip")
    cfg = raw_json(s3, s3_server.bucket, volume_dir(prefix, "pvc-sticky") + "backups/backup_backup-2.cfg")
    assert cfg["CompressionMethod"] == "lz4"


def test_read_image_restores_a_directory(tmp_path, store):
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "file.bin").write_bytes(bytes(range(256)) * 20000)
    (source / "hello.txt").write_text("hello")
    image = volumedata.image_from_dir(str(source), VOLUME_SIZE)
    do_backup(store, "pvc-dir", "backup-1", image)

    progress = []
    restored, size = store.read_image("pvc-dir", "backup-1", on_block=lambda done, total: progress.append((done, total)))
    volumedata.dir_from_image(restored, str(tmp_path / "restored"))

    assert size == VOLUME_SIZE
    assert volumedata.dir_digest(str(tmp_path / "restored")) == volumedata.dir_digest(str(source))
    assert sorted(progress)[-1] == (len(volumedata.split_blocks(image)),) * 2


def test_corrupt_block_is_detected(s3, s3_server, store, prefix):
    do_backup(store, "pvc-corrupt", "backup-1", image_of({0: 1, 2: 2}))
    bad = sha512_64(b"\x02" * BS)
    s3.put_object(Bucket=s3_server.bucket, Key=block_key(prefix, "pvc-corrupt", bad), Body=lz4.frame.compress(b"\x03" * BS))

    with pytest.raises(CorruptBlock) as error:
        store.read_image("pvc-corrupt", "backup-1")
    assert error.value.checksum == bad and error.value.volume == "pvc-corrupt" and error.value.backup == "backup-1"


def test_undecodable_block_is_corrupt(s3, s3_server, store, prefix):
    do_backup(store, "pvc-garbage", "backup-1", image_of({0: 1}))
    checksum = sha512_64(b"\x01" * BS)
    s3.put_object(Bucket=s3_server.bucket, Key=block_key(prefix, "pvc-garbage", checksum), Body=b"not a block")
    with pytest.raises(CorruptBlock):
        store.read_image("pvc-garbage", "backup-1")


def test_missing_block_is_detected(s3, s3_server, store, prefix):
    do_backup(store, "pvc-missing", "backup-1", image_of({0: 1, 2: 2}))
    gone = sha512_64(b"\x01" * BS)
    s3.delete_object(Bucket=s3_server.bucket, Key=block_key(prefix, "pvc-missing", gone))

    with pytest.raises(MissingBlock) as error:
        store.read_image("pvc-missing", "backup-1")
    assert error.value.checksum == gone


def test_gzip_block_under_lz4_cfg_is_read_with_fallback(s3, s3_server, store, prefix):
    image = image_of({0: 1, 1: 2})
    do_backup(store, "pvc-fallback", "backup-1", image)
    checksum = sha512_64(b"\x02" * BS)
    s3.put_object(Bucket=s3_server.bucket, Key=block_key(prefix, "pvc-fallback", checksum), Body=gzip.compress(b"\x02" * BS))

    assert store.read_image("pvc-fallback", "backup-1")[0] == image


def test_delete_backup_collects_unreferenced_blocks(s3, s3_server, store, prefix):
    volume, bucket = "pvc-gc", s3_server.bucket
    vdir = volume_dir(prefix, volume)
    do_backup(store, volume, "backup-1", image_of({0: 1, 1: 2}))
    do_backup(store, volume, "backup-2", image_of({0: 1, 1: 3}), when=T2)

    store.delete_backup(volume, "backup-1")

    assert keys_under(s3, bucket, vdir + "blocks/") == sorted(
        block_key(prefix, volume, sha512_64(bytes([fill]) * BS)) for fill in (1, 3))
    assert keys_under(s3, bucket, vdir + "backups/") == [vdir + "backups/backup_backup-2.cfg"]
    volume_cfg = raw_json(s3, bucket, vdir + "volume.cfg")
    assert volume_cfg["BlockCount"] == "2" and volume_cfg["LastBackupName"] == "backup-2"
    assert keys_under(s3, bucket, vdir + "locks/") == []


def test_deleting_the_latest_backup_moves_last_backup_back(s3, s3_server, store, prefix):
    volume = "pvc-latest"
    do_backup(store, volume, "backup-1", image_of({0: 1}))
    do_backup(store, volume, "backup-2", image_of({0: 2}), when=T2)

    store.delete_backup(volume, "backup-2")
    volume_cfg = raw_json(s3, s3_server.bucket, volume_dir(prefix, volume) + "volume.cfg")
    assert volume_cfg["LastBackupName"] == "backup-1" and volume_cfg["LastBackupAt"] == "2026-01-02T03:04:05Z"

    store.delete_backup(volume, "backup-1")
    volume_cfg = raw_json(s3, s3_server.bucket, volume_dir(prefix, volume) + "volume.cfg")
    # ref §3.3: the last backup's deletion keeps volume.cfg.
    assert volume_cfg["LastBackupName"] == "" and volume_cfg["BlockCount"] == "0"
    assert keys_under(s3, s3_server.bucket, volume_dir(prefix, volume) + "blocks/") == []


def test_delete_skips_gc_while_a_backup_is_incomplete(s3, s3_server, store, prefix):
    volume = "pvc-nogc"
    do_backup(store, volume, "backup-1", image_of({0: 1}))
    do_backup(store, volume, "backup-2", image_of({0: 2}), when=T2)
    crashed = store.begin_backup(volume, "backup-3")
    crashed.abort()

    store.delete_backup(volume, "backup-1")
    blocks = keys_under(s3, s3_server.bucket, volume_dir(prefix, volume) + "blocks/")
    assert block_key(prefix, volume, sha512_64(b"\x01" * BS)) in blocks
    with pytest.raises(BackupStoreError, match="in progress"):
        store.read_image(volume, "backup-3")


def test_delete_is_refused_while_a_backup_holds_its_lock(store):
    do_backup(store, "pvc-busy", "backup-1", image_of({0: 1}))
    running = store.begin_backup("pvc-busy", "backup-2")
    with pytest.raises(LockError, match="failed to acquire lock"):
        store.delete_backup("pvc-busy", "backup-1")
    running.finish(snapshot_name="s2", snapshot_created_at=T2, created_at=T2, volume_size=VOLUME_SIZE, labels={})
    store.delete_backup("pvc-busy", "backup-1")
    assert store.list_backup_names("pvc-busy") == ["backup-2"]


def test_concurrent_uploads_of_the_same_content(s3, s3_server, store, prefix):
    writer = store.begin_backup("pvc-threads", "backup-1", volume_size=16 * BS)
    start = threading.Barrier(8)

    def upload(index):
        start.wait()
        return writer.upload_block(index * BS, b"\x11" * BS)

    with ThreadPoolExecutor(max_workers=8) as pool:
        sent = list(pool.map(upload, range(8)))
    cfg = writer.finish(snapshot_name="s", snapshot_created_at=T1, created_at=T1, volume_size=16 * BS, labels={})

    assert len([size for size in sent if size]) == 1
    assert [block["Offset"] for block in cfg["Blocks"]] == [index * BS for index in range(8)]
    assert len(keys_under(s3, s3_server.bucket, volume_dir(prefix, "pvc-threads") + "blocks/")) == 1


def test_listing_volumes_and_backups(store):
    for volume in ("pvc-b", "pvc-a"):
        do_backup(store, volume, "backup-2", image_of({0: 1}))
        do_backup(store, volume, "backup-1", image_of({0: 1}))
    assert volume_hash_path("pvc-a") != volume_hash_path("pvc-b")
    assert store.list_volume_names() == ["pvc-a", "pvc-b"]
    assert store.list_backup_names("pvc-a") == ["backup-1", "backup-2"]
    assert store.read_volume_cfg("pvc-a")["CompressionMethod"] == "lz4"
    assert store.read_volume_cfg("pvc-none") is None
    assert store.read_backup_cfg("pvc-a", "backup-9") is None


def test_delete_volume_removes_everything(s3, s3_server, store, prefix):
    do_backup(store, "pvc-gone", "backup-1", image_of({0: 1}))
    do_backup(store, "pvc-kept", "backup-1", image_of({0: 1}))
    store.delete_volume("pvc-gone")
    assert keys_under(s3, s3_server.bucket, volume_dir(prefix, "pvc-gone")) == []
    assert store.list_volume_names() == ["pvc-kept"]


def test_system_backup_layout(s3, s3_server, store, prefix):
    archive = b"PK\x03\x04 pretend zip"
    created = datetime.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=datetime.timezone.utc)
    store.write_system_backup("v1.10.2", "sb-1", archive, manager_image="longhornio/longhorn-manager:v1.10.2",
                              engine_image="longhornio/longhorn-engine:v1.10.2", git_commit="abc123",
                              target_url="s3://bucket@us-east-1/", created_at=created)
    path = prefix + "backupstore/system-backups/v1.10.2/sb-1/"
    assert keys_under(s3, s3_server.bucket, path) == [path + "system-backup.cfg", path + "system-backup.zip"]
    cfg = raw_json(s3, s3_server.bucket, path + "system-backup.cfg")
    assert list(cfg) == ["Name", "LonghornVersion", "LonghornGitCommit", "BackupTargetURL", "ManagerImage",
                         "EngineImage", "CreatedAt", "Checksum"]
    assert cfg["Checksum"] == hashlib.sha256(archive).hexdigest()
    assert cfg["CreatedAt"] == "2026-01-02T03:04:05.12Z"
    assert [(item["version"], item["name"]) for item in store.list_system_backups()] == [("v1.10.2", "sb-1")]
    assert store.read_system_backup_zip("v1.10.2", "sb-1") == archive

    s3.put_object(Bucket=s3_server.bucket, Key=path + "system-backup.zip", Body=archive + b"tampered")
    with pytest.raises(BackupStoreError, match="checksum mismatched"):
        store.read_system_backup_zip("v1.10.2", "sb-1")
    with pytest.raises(BackupStoreError, match="already exists"):
        store.write_system_backup("v1.10.2", "sb-1", archive, manager_image="m", engine_image="e", git_commit="c",
                                  target_url="s3://bucket@us-east-1/", created_at=created)


def test_backup_urls():
    # ref §4: parameters sorted by key, the target's own parameters kept.
    assert encode_backup_url("backup-1a2b3c4d5e6f7a8b", "pvc-1", "s3://backupbucket@us-east-1/") == \
        "s3://backupbucket@us-east-1/?backup=backup-1a2b3c4d5e6f7a8b&volume=pvc-1"
    assert encode_backup_url("backup-1", "pvc-1", "s3://bucket@us-east-1/mypath/") == \
        "s3://bucket@us-east-1/mypath/?backup=backup-1&volume=pvc-1"
    assert encode_backup_url("backup-1", "pvc-1", "nfs://server:/export?nfsOptions=soft,timeo=330") == \
        "nfs://server:/export?backup=backup-1&nfsOptions=soft%2Ctimeo%3D330&volume=pvc-1"
    assert encode_backup_url("", "pvc-1", "s3://bucket@us-east-1/") == "s3://bucket@us-east-1/?volume=pvc-1"
    assert decode_backup_url("s3://bucket@us-east-1/?backup=backup-1&volume=pvc-1") == ("backup-1", "pvc-1")
    assert decode_backup_url("s3://bucket@us-east-1/?volume=pvc-1") == ("", "pvc-1")
    with pytest.raises(BackupStoreError, match="invalid volume name"):
        decode_backup_url("s3://bucket@us-east-1/?backup=backup-1&volume=-bad")
