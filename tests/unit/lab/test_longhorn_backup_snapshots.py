# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots and backups made by the emulator, read back independently (ref §1.3, §1.6, §3.3, §4)."""

from __future__ import annotations

import gzip
import os
import hashlib
import json
import time

import lz4.frame
import pytest

from tests.lab.longhorn import bucket_faults, snapshots, volumedata
from tests.lab.longhorn.backupstore import CorruptBlock, MissingBlock
from tests.unit.lab.test_longhorn_backup_harness import (MIB, NS, env, env_factory,  # noqa: F401 pylint: disable=unused-import
                                                         wait_for)

KUBERNETES_STATUS = json.dumps({"pvName": "pv-data", "pvStatus": "Bound", "namespace": "apps", "pvcName": "data",
                                "lastPVCRefAt": "", "workloadsStatus": [], "lastPodRefAt": ""}, separators=(",", ":"))


def volume_prefix(env, volume):
    """ref §3.3: <prefix>/backupstore/volumes/<h1>/<h2>/<volume>/, h = truncated SHA-512 of the name."""
    digest = hashlib.sha512(volume.encode()).hexdigest()
    return "%s/backupstore/volumes/%s/%s/%s/" % (env.prefix, digest[0:2], digest[2:4], volume)


def read_json(client, bucket, key):
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def list_keys(client, bucket, prefix):
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def restore_independently(env, volume, backup):
    """Rebuild a volume image from the bucket with boto3 + json + lz4/gzip + hashlib only (ref §3.3)."""
    client = env.s3.client()
    bucket = env.s3.bucket
    root = volume_prefix(env, volume)
    volume_cfg = read_json(client, bucket, root + "volume.cfg")
    cfg = read_json(client, bucket, root + "backups/backup_%s.cfg" % backup)
    method = cfg["CompressionMethod"]
    block_size = int(cfg["Parameters"]["backup-block-size"])
    image = bytearray(int(volume_cfg["Size"]))
    offsets = [block["Offset"] for block in cfg["Blocks"]]
    assert offsets == sorted(offsets)
    for block in cfg["Blocks"]:
        checksum = block["BlockChecksum"]
        key = root + "blocks/%s/%s/%s.blk" % (checksum[0:2], checksum[2:4], checksum)
        payload = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        data = {"lz4": lz4.frame.decompress, "gzip": gzip.decompress, "none": bytes}[method](payload)
        assert len(data) == block_size
        assert hashlib.sha512(data).hexdigest()[:64] == checksum
        image[block["Offset"]:block["Offset"] + block_size] = data
    return volume_cfg, cfg, bytes(image)


def padded(image, size):
    """A snapshot image holds the data; the volume is zeros after it, up to its size."""
    return image + bytes(size - len(image))


def make_volume(env, name, files, size=8 * MIB, **spec):
    env.create_volume(name, size=size, **spec)
    env.write_files(name, files)


def test_snapshot_captures_data_and_auto_attaches(env):
    make_volume(env, "vol-snap", {"a.txt": b"alpha"})
    snap = env.snapshot("vol-snap", "snap-1", labels={"purpose": "test"})
    status = snap["status"]
    assert status["readyToUse"] is True and status["creationTime"]
    assert status["size"] > 0 and status["restoreSize"] == 8 * MIB
    assert status["labels"] == {"purpose": "test"}
    assert status["userCreated"] is True
    assert snap["metadata"]["labels"]["longhornvolume"] == "vol-snap"
    assert snap["metadata"]["ownerReferences"][0]["kind"] == "Volume"
    assert "longhorn.io" in snap["metadata"]["finalizers"]
    # ref §1.6: the snapshot controller attaches with its own ticket, then lets go.
    assert ("vol-snap", ["snapshot-controller-snap-1"]) in env.ctx.extras["attach_log"]
    wait_for(lambda: not (env.get("volumeattachments", "vol-snap")["spec"].get("attachmentTickets")), what="ticket released")
    image = volumedata.image_from_dir(env.ctx.volume_data_dir("vol-snap"), 8 * MIB)
    assert snapshots.read(env.ctx, "vol-snap", "snap-1") == image
    env.write_files("vol-snap", {"a.txt": b"changed after the snapshot"})
    assert snapshots.read(env.ctx, "vol-snap", "snap-1") == image
    second = env.snapshot("vol-snap", "snap-2")
    assert second["status"]["parent"] == "snap-1"


def test_backup_writes_the_real_layout_read_back_independently(env):
    env.configure_target()
    files = {"data/big.bin": bytes(range(256)) * 12288, "small.txt": b"hello backup"}
    make_volume(env, "vol-a", files)
    env.snapshot("vol-a", "snap-a1")
    labels = {"KubernetesStatus": KUBERNETES_STATUS}
    backup = env.backup("snap-a1", "backup-a1", labels=labels)
    expected = padded(snapshots.read(env.ctx, "vol-a", "snap-a1"), 8 * MIB)

    volume_cfg, cfg, image = restore_independently(env, "vol-a", "backup-a1")
    assert image == expected
    # volume.cfg: numbers as strings, double-encoded string fields (ref §3.3).
    assert volume_cfg["Name"] == "vol-a" and volume_cfg["Size"] == str(8 * MIB)
    assert volume_cfg["CompressionMethod"] == '"lz4"'
    assert json.loads(volume_cfg["BackingImageName"]) == ""
    assert volume_cfg["LastBackupName"] == "backup-a1"
    assert volume_cfg["LastBackupAt"] == cfg["SnapshotCreatedAt"]
    assert int(volume_cfg["BlockCount"]) == len({b["BlockChecksum"] for b in cfg["Blocks"]})
    assert volume_cfg["Labels"]["KubernetesStatus"] == KUBERNETES_STATUS
    assert volume_cfg["Labels"]["longhorn.io/volume-access-mode"] == "rwo"
    assert volume_cfg["Labels"]["VolumeRecurringJobInfo"] == "{}"
    # backup cfg (ref §3.3).
    assert cfg["Name"] == "backup-a1" and cfg["VolumeName"] == "vol-a" and cfg["SnapshotName"] == "snap-a1"
    assert cfg["CreatedTime"] and cfg["SnapshotCreatedAt"]
    assert cfg["Size"] == str(len(cfg["Blocks"]) * 2 * MIB)
    assert cfg["Parameters"] == {"backup-mode": "incremental", "backup-block-size": str(2 * MIB)}
    assert cfg["IsIncremental"] is False
    assert cfg["CompressionMethod"] == "lz4"
    assert cfg["SingleFile"] == {"FilePath": ""}
    # no lock left behind once done
    assert not list_keys(env.s3.client(), env.s3.bucket, volume_prefix(env, "vol-a") + "locks/")

    status = backup["status"]
    assert status["url"] == "%s?backup=backup-a1&volume=vol-a" % env.normalized_url
    assert status["size"] == cfg["Size"]
    assert status["volumeSize"] == str(8 * MIB)
    assert status["volumeName"] == "vol-a"
    assert status["snapshotName"] == "snap-a1"
    assert status["snapshotCreatedAt"] == cfg["SnapshotCreatedAt"]
    assert status["backupCreatedAt"] == cfg["CreatedTime"]
    assert status["compressionMethod"] == "lz4"
    assert status["newlyUploadDataSize"] == cfg["NewlyUploadedDataSize"] and int(status["newlyUploadDataSize"]) > 0
    assert status["reUploadedDataSize"] == "0"
    assert status["backupTargetName"] == "default"
    assert status["progress"] == 100
    assert status["labels"]["KubernetesStatus"] == KUBERNETES_STATUS
    assert "VolumeRecurringJobInfo" not in status["labels"]
    assert backup["metadata"]["labels"] == {"backup-volume": "vol-a", "backup-target": "default"}
    assert backup["spec"]["backupMode"] == "incremental"
    assert backup["spec"]["labels"]["longhorn.io/volume-access-mode"] == "rwo"
    volume = env.get("volumes", "vol-a")
    assert volume["status"]["lastBackup"] == "backup-a1"
    assert volume["status"]["lastBackupAt"] == cfg["SnapshotCreatedAt"]
    wait_for(lambda: not (env.get("volumeattachments", "vol-a")["spec"].get("attachmentTickets")), what="backup ticket released")
    assert any("backup-controller-backup-a1" in tickets for _v, tickets in env.ctx.extras["attach_log"])
    bv = wait_for(lambda: [bv for bv in env.list("backupvolumes", "backup-volume=vol-a")
                           if (bv.get("status") or {}).get("lastBackupName") == "backup-a1"], what="BackupVolume of vol-a")[0]
    assert bv["status"]["labels"]["KubernetesStatus"] == KUBERNETES_STATUS


def test_incremental_backup_reuses_blocks_and_full_reuploads(env):
    env.configure_target()
    make_volume(env, "vol-inc", {"one.bin": b"1" * 3 * MIB, "two.bin": b"2" * 3 * MIB})
    env.snapshot("vol-inc", "snap-i1")
    first = env.backup("snap-i1", "backup-i1")
    client, bucket = env.s3.client(), env.s3.bucket
    blocks_after_first = set(list_keys(client, bucket, volume_prefix(env, "vol-inc") + "blocks/"))
    env.write_files("vol-inc", {"three.txt": b"a small change"})
    env.snapshot("vol-inc", "snap-i2")
    second = env.backup("snap-i2", "backup-i2")
    blocks_after_second = set(list_keys(client, bucket, volume_prefix(env, "vol-inc") + "blocks/"))
    assert blocks_after_first < blocks_after_second
    assert int(second["status"]["newlyUploadDataSize"]) < int(first["status"]["newlyUploadDataSize"])
    _vcfg, cfg, image = restore_independently(env, "vol-inc", "backup-i2")
    assert cfg["IsIncremental"] is True
    assert image == padded(snapshots.read(env.ctx, "vol-inc", "snap-i2"), 8 * MIB)
    # The first backup still restores on its own (full block map per cfg).
    assert restore_independently(env, "vol-inc", "backup-i1")[2] == padded(snapshots.read(env.ctx, "vol-inc", "snap-i1"), 8 * MIB)

    third = env.backup("snap-i2", "backup-i3", mode="full")
    assert third["spec"]["backupMode"] == "full"
    assert int(third["status"]["reUploadedDataSize"]) > 0
    assert third["status"]["newlyUploadDataSize"] == "0"
    assert restore_independently(env, "vol-inc", "backup-i3")[1]["Parameters"]["backup-mode"] == "full"


def test_compression_and_block_size_follow_the_volume(env):
    env.configure_target()
    make_volume(env, "vol-gz", {"f.bin": b"z" * MIB}, size=32 * MIB, backupCompressionMethod="gzip", backupBlockSize=str(16 * MIB))
    env.snapshot("vol-gz", "snap-gz")
    backup = env.backup("snap-gz", "backup-gz")
    assert backup["spec"]["backupBlockSize"] == str(16 * MIB)
    volume_cfg, cfg, image = restore_independently(env, "vol-gz", "backup-gz")
    assert cfg["CompressionMethod"] == "gzip" and volume_cfg["CompressionMethod"] == '"gzip"'
    assert cfg["Parameters"]["backup-block-size"] == str(16 * MIB)
    assert image == padded(snapshots.read(env.ctx, "vol-gz", "snap-gz"), 32 * MIB)
    assert backup["status"]["compressionMethod"] == "gzip"


def test_progress_goes_through_in_progress(env_factory):
    env = env_factory(backup_speed_mbps=8)
    env.configure_target()
    make_volume(env, "vol-slow", {"big.bin": bytes(range(256)) * 4096 * 6})
    env.snapshot("vol-slow", "snap-slow")
    watch = env.store.watch(env.rtype("backups"), NS, resource_version=env.store.list(env.rtype("backups"), NS)[1])
    started = time.monotonic()
    env.backup("snap-slow", "backup-slow", timeout=30)
    assert time.monotonic() - started >= 0.5
    seen = []
    while True:
        item = watch.next(timeout=0.1)
        if item is None:
            break
        status = item[1].get("status") or {}
        seen.append((status.get("state"), status.get("progress")))
    watch.close()
    states = [state for state, _progress in seen]
    assert "InProgress" in states and states[-1] == "Completed"
    assert states.index("InProgress") < states.index("Completed")
    assert any(0 < (progress or 0) < 100 for state, progress in seen if state == "InProgress")


def test_backup_failure_leaves_a_stub_cfg(env):
    env.configure_target()
    make_volume(env, "vol-bad", {"f.bin": b"q" * 5 * MIB})
    env.faults.fail_backup("vol-bad")
    env.snapshot("vol-bad", "snap-bad")
    backup = env.backup("snap-bad", "backup-bad", wait=False)
    backup = env.wait_backup("backup-bad", ("Error",))
    assert "lab fault injection" in backup["status"]["error"]
    client, bucket = env.s3.client(), env.s3.bucket
    cfg = read_json(client, bucket, volume_prefix(env, "vol-bad") + "backups/backup_backup-bad.cfg")
    assert cfg["CreatedTime"] == "" and cfg["Name"] == "backup-bad" and cfg["CompressionMethod"] == "lz4"
    assert not list_keys(client, bucket, volume_prefix(env, "vol-bad") + "locks/")
    wait_for(lambda: not (env.get("volumeattachments", "vol-bad")["spec"].get("attachmentTickets")), what="ticket released")
    assert not (env.get("volumes", "vol-bad").get("status") or {}).get("lastBackup")


def test_backup_of_a_missing_snapshot_waits(env):
    env.configure_target()
    make_volume(env, "vol-wait", {"f": b"1"})
    env.snapshot("vol-wait", "snap-wait")
    env.backup("snap-wait", "backup-wait", wait=False)
    env.wait_backup("backup-wait", ("Completed",))


def test_bucket_faults_damage_a_referenced_block(env):
    env.configure_target()
    make_volume(env, "vol-dmg", {"a.bin": b"a" * 3 * MIB, "b.bin": b"b" * 3 * MIB})
    env.snapshot("vol-dmg", "snap-dmg")
    env.backup("snap-dmg", "backup-dmg")
    store = env.backupstore()
    key = bucket_faults.corrupt_block(env.ctx, "vol-dmg")
    assert key.startswith(volume_prefix(env, "vol-dmg") + "blocks/")
    with pytest.raises(CorruptBlock):
        store.read_image("vol-dmg", "backup-dmg")
    deleted = bucket_faults.delete_block(store, "vol-dmg", "backup-dmg")
    assert deleted == key
    with pytest.raises(MissingBlock):
        store.read_image("vol-dmg", "backup-dmg")
    with pytest.raises(bucket_faults.BucketFaultError):
        bucket_faults.corrupt_block(store, "vol-dmg", "backup-nope")


def test_removed_data_does_not_come_back_from_the_last_backup(env):
    env.configure_target()
    make_volume(env, "vol-shrink", {"big.bin": bytes(range(256)) * 4096 * 5, "keep.txt": b"keep"})
    env.snapshot("vol-shrink", "snap-s1")
    env.backup("snap-s1", "backup-s1")
    root = env.ctx.volume_data_dir("vol-shrink")
    os.remove(os.path.join(root, "big.bin"))
    env.snapshot("vol-shrink", "snap-s2")
    env.backup("snap-s2", "backup-s2")
    _vcfg, cfg, image = restore_independently(env, "vol-shrink", "backup-s2")
    assert image == padded(snapshots.read(env.ctx, "vol-shrink", "snap-s2"), 8 * MIB)
    # Offsets the first backup mapped are still mapped, now to the zero block (incremental merge, ref §3.3).
    zero_checksum = hashlib.sha512(bytes(2 * MIB)).hexdigest()[:64]
    assert zero_checksum in {block["BlockChecksum"] for block in cfg["Blocks"]}


def test_volume_recurring_jobs_are_recorded_in_volume_cfg(env):
    env.configure_target()
    env.create("recurringjobs", "nightly", {"task": "backup", "cron": "0 2 * * *", "retain": 7, "groups": ["default"],
                                            "concurrency": 2, "labels": {"team": "db"}})
    env.create("recurringjobs", "hourly", {"task": "snapshot", "cron": "0 * * * *", "retain": 3, "concurrency": 1})
    env.create_volume("vol-rj")
    env.write_files("vol-rj", {"f": b"data"})

    def _labels(obj):
        labels = obj["metadata"].setdefault("labels", {})
        labels.update({"recurring-job-group.longhorn.io/default": "enabled", "recurring-job.longhorn.io/hourly": "enabled"})
    env.modify("volumes", "vol-rj", _labels)
    env.snapshot("vol-rj", "snap-rj")
    backup = env.backup("snap-rj", "backup-rj")
    volume_cfg, _cfg, _image = restore_independently(env, "vol-rj", "backup-rj")
    info = volume_cfg["Labels"]["VolumeRecurringJobInfo"]
    # Go field order and omitempty (lm@v1.10.2 VolumeRecurringJobInfo / RecurringJobSpec).
    assert info == ('{"hourly":{"jobSpec":{"name":"hourly","task":"snapshot","cron":"0 * * * *","retain":3,"concurrency":1},"fromJob":true},'
                    '"nightly":{"jobSpec":{"name":"nightly","groups":["default"],"task":"backup","cron":"0 2 * * *","retain":7,'
                    '"concurrency":2,"labels":{"team":"db"}},"fromGroup":["default"],"fromJob":false}}')
    assert "VolumeRecurringJobInfo" not in backup["status"]["labels"]
    # Jobs are stored, never run, in the lab.
    job = wait_for(lambda: (env.get("recurringjobs", "nightly").get("status") or {}).get("ownerID") and env.get("recurringjobs", "nightly"),
                   what="recurring job owned")
    assert job["status"] == {"ownerID": "lab-node-1", "executionCount": 0}
