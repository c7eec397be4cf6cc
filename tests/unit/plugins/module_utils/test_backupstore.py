# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decoding of Longhorn's backupstore objects (ref §3.3), from bytes as Longhorn writes them.

The documents below are written out by hand in Go's encoding (field order, string
numbers, double-encoded strings); a second set is produced by the lab's writer, so the
collection's reader and the lab's writer are checked against each other.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json

import lz4.frame
import pytest

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backupstore as bs

from tests.lab.longhorn import backupstore as lab_backupstore

UTC = datetime.timezone.utc

# A volume.cfg as backupstore's saveVolume writes it (json:",string" fields double-encoded).
VOLUME_CFG = (
    b'{"Name":"pvc-0123abcd-test","Size":"2147483648","Labels":{"KubernetesStatus":"{\\"pvName\\":\\"pvc-0123abcd-test\\",'
    b'\\"pvStatus\\":\\"Bound\\",\\"namespace\\":\\"apps\\",\\"pvcName\\":\\"data-postgres-0\\",\\"lastPVCRefAt\\":\\"\\",'
    b'\\"workloadsStatus\\":null,\\"lastPodRefAt\\":\\"\\"}","longhorn.io/volume-access-mode":"rwo"},'
    b'"CreatedTime":"2026-01-01T00:00:00Z","LastBackupName":"backup-1a2b3c4d5e6f4a7b","LastBackupAt":"2026-02-03T04:05:06Z",'
    b'"BlockCount":"12","BackingImageName":"\\"\\"","BackingImageChecksum":"\\"\\"","CompressionMethod":"\\"lz4\\"",'
    b'"StorageClassName":"\\"longhorn\\"","DataEngine":"\\"\\""}'
)
STUB_CFG = (
    b'{"Name":"backup-1a2b3c4d5e6f4a7b","VolumeName":"pvc-0123abcd-test","SnapshotName":"","SnapshotCreatedAt":"",'
    b'"CreatedTime":"","Size":"0","Labels":null,"Parameters":null,"IsIncremental":false,"CompressionMethod":"lz4",'
    b'"NewlyUploadedDataSize":"0","ReUploadedDataSize":"0","ProcessingBlocks":null,"SingleFile":{"FilePath":""}}'
)
COMPLETE_CFG = (
    b'{"Name":"backup-1a2b3c4d5e6f4a7b","VolumeName":"pvc-0123abcd-test","SnapshotName":"snap-1",'
    b'"SnapshotCreatedAt":"2026-02-03T04:05:06Z","CreatedTime":"2026-02-03T04:07:00Z","Size":"4194304",'
    b'"Labels":{"RecurringJob":"daily-backup"},"Parameters":{"backup-block-size":"16777216","backup-mode":"incremental"},'
    b'"IsIncremental":true,"CompressionMethod":"gzip","NewlyUploadedDataSize":"1000","ReUploadedDataSize":"0",'
    b'"ProcessingBlocks":{},"Blocks":[{"Offset":0,"BlockChecksum":"%s"}],"SingleFile":{"FilePath":""}}' % (b"ab" * 32)
)


def test_backupstore_root_follows_the_target_path():
    assert bs.backupstore_root("") == "backupstore/"
    assert bs.backupstore_root(None) == "backupstore/"
    assert bs.backupstore_root("/") == "backupstore/"
    assert bs.backupstore_root("cluster-a") == "cluster-a/backupstore/"
    assert bs.backupstore_root("/a/b/") == "a/b/backupstore/"


def test_volume_paths_use_the_truncated_sha512_of_the_name():
    # ref §3.3: pvc-0123abcd-test -> a79b1d58... -> volumes/a7/9b/pvc-0123abcd-test/
    assert bs.name_checksum("pvc-0123abcd-test").startswith("a79b1d58")
    assert len(bs.name_checksum("x")) == 64
    assert bs.volume_hash_path("pvc-0123abcd-test") == "a7/9b"
    root = bs.backupstore_root("p")
    assert bs.volume_cfg_key(root, "pvc-0123abcd-test") == "p/backupstore/volumes/a7/9b/pvc-0123abcd-test/volume.cfg"
    assert bs.backup_cfg_key(root, "pvc-0123abcd-test", "backup-1") == \
        "p/backupstore/volumes/a7/9b/pvc-0123abcd-test/backups/backup_backup-1.cfg"
    checksum = "0f1e" + "0" * 60
    assert bs.block_key(root, "pvc-0123abcd-test", checksum) == \
        "p/backupstore/volumes/a7/9b/pvc-0123abcd-test/blocks/0f/1e/%s.blk" % checksum


@pytest.mark.parametrize("volume", ["pvc-0123abcd-test", "vol.with_dots-1", "a" * 40])
def test_paths_agree_with_the_lab_writer(volume):
    root = bs.backupstore_root("")
    store = lab_backupstore.BackupStore(None, "bucket")
    assert bs.volume_cfg_key(root, volume) == store.volume_cfg_key(volume)
    assert bs.backup_cfg_key(root, volume, "backup-x") == store.backup_cfg_key(volume, "backup-x")
    checksum = bs.block_checksum(b"\x01" * 100)
    assert bs.block_key(root, volume, checksum) == store.block_key(volume, checksum)


def test_backup_name_from_cfg_key():
    assert bs.backup_name_from_cfg_key("x/backups/backup_backup-12.cfg") == "backup-12"
    assert bs.backup_name_from_cfg_key("x/volume.cfg") is None
    assert bs.backup_name_from_cfg_key("x/backups/other.cfg") is None


@pytest.mark.parametrize("text, expected", [
    ("2026-02-03T04:05:06Z", datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ("2026-02-03T04:05:06.123456789Z", datetime.datetime(2026, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)),
    ("2026-02-03T06:05:06+02:00", datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ("2026-02-03T04:05:06.5Z", datetime.datetime(2026, 2, 3, 4, 5, 6, 500000, tzinfo=UTC)),
])
def test_parse_go_time(text, expected):
    assert bs.parse_go_time(text) == expected


def test_parse_go_time_empty_and_invalid():
    assert bs.parse_go_time("") is None
    assert bs.parse_go_time(None) is None
    with pytest.raises(bs.BackupstoreFormatError, match="not-a-time"):
        bs.parse_go_time("not-a-time")


def test_decode_volume_cfg_undoes_go_string_encoding():
    cfg = bs.decode_volume_cfg(VOLUME_CFG)
    assert cfg["Name"] == "pvc-0123abcd-test"
    assert cfg["Size"] == 2147483648
    assert cfg["BlockCount"] == 12
    assert cfg["CompressionMethod"] == "lz4"
    assert cfg["StorageClassName"] == "longhorn"
    assert cfg["BackingImageName"] == ""
    # An empty DataEngine is read as v1 (ref §3.3 volume.cfg).
    assert cfg["DataEngine"] == "v1"
    assert cfg["LastBackupName"] == "backup-1a2b3c4d5e6f4a7b"
    assert cfg["LastBackupAtTime"] == datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    status = bs.kubernetes_status(cfg["Labels"])
    assert (status["namespace"], status["pvcName"]) == ("apps", "data-postgres-0")


def test_decode_volume_cfg_defaults_of_old_volumes():
    # Before compression was configurable there was no CompressionMethod: gzip (ref §3.3 Compression).
    cfg = bs.decode_volume_cfg(b'{"Name":"v","Size":"0","Labels":null,"CreatedTime":"","LastBackupName":"","LastBackupAt":"",'
                               b'"BlockCount":"0","BackingImageName":"","BackingImageChecksum":""}')
    assert cfg["CompressionMethod"] == "gzip"
    assert cfg["Labels"] == {}
    assert cfg["LastBackupAtTime"] is None


@pytest.mark.parametrize("raw, match", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"Name":"v","Size":"big"}', "Size is not an integer"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_decode_volume_cfg_rejects_other_content(raw, match):
    with pytest.raises(bs.BackupstoreFormatError, match=match):
        bs.decode_volume_cfg(raw)


def test_decode_backup_cfg_stub_is_incomplete():
    cfg = bs.decode_backup_cfg(STUB_CFG)
    assert cfg["Complete"] is False
    assert cfg["Blocks"] == []
    assert cfg["Parameters"] == {}
    assert cfg["BlockSize"] == bs.DEFAULT_BLOCK_SIZE
    assert cfg["CreatedTimeParsed"] is None


def test_decode_backup_cfg_complete():
    cfg = bs.decode_backup_cfg(COMPLETE_CFG)
    assert cfg["Complete"] is True
    assert cfg["Size"] == 4194304
    assert cfg["CompressionMethod"] == "gzip"
    assert cfg["BlockSize"] == 16 * 1024 * 1024
    assert cfg["Blocks"] == [{"Offset": 0, "BlockChecksum": "ab" * 32}]
    assert cfg["SnapshotCreatedAtParsed"] == datetime.datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_block_size_parameter_must_be_a_number():
    with pytest.raises(bs.BackupstoreFormatError, match="backup-block-size"):
        bs.decode_backup_cfg(b'{"Name":"b","CreatedTime":"","Parameters":{"backup-block-size":"2Mi"}}')


def test_lab_writer_documents_decode(tmp_path):
    """The lab writes volume.cfg and backup cfgs like Longhorn; the collection reads them back."""
    # pylint: disable=protected-access
    volume_doc = lab_backupstore.go_json(lab_backupstore._volume_doc({
        "Name": "pvc-x", "Size": 8 << 20, "Labels": {"KubernetesStatus": json.dumps({"namespace": "n", "pvcName": "c"})},
        "CreatedTime": "2026-01-01T00:00:00Z", "LastBackupName": "backup-b", "LastBackupAt": "2026-01-02T00:00:00Z",
        "BlockCount": 3, "CompressionMethod": "lz4", "StorageClassName": "longhorn", "DataEngine": "v2"}))
    cfg = bs.decode_volume_cfg(volume_doc)
    assert (cfg["Size"], cfg["BlockCount"], cfg["CompressionMethod"], cfg["DataEngine"]) == (8 << 20, 3, "lz4", "v2")
    stub = lab_backupstore.go_json(lab_backupstore._backup_doc({"Name": "backup-b", "VolumeName": "pvc-x",
                                                               "CompressionMethod": "lz4", "CreatedTime": ""}))
    assert stub == STUB_CFG.replace(b"backup-1a2b3c4d5e6f4a7b", b"backup-b").replace(b"pvc-0123abcd-test", b"pvc-x")
    assert bs.decode_backup_cfg(stub)["Complete"] is False


def test_kubernetes_status_tolerates_bad_labels():
    assert bs.kubernetes_status({}) == {}
    assert bs.kubernetes_status(None) == {}
    assert bs.kubernetes_status({"KubernetesStatus": "{broken"}) == {}
    assert bs.kubernetes_status({"KubernetesStatus": "[1]"}) == {}


DATA = (b"longhorn block " * 140000)[:2 * 1024 * 1024]
CHECKSUM = hashlib.sha512(DATA).hexdigest()[:64]


@pytest.mark.parametrize("method, payload", [
    ("none", DATA),
    ("gzip", gzip.compress(DATA)),
    ("lz4", lz4.frame.compress(DATA)),
    ("lz4", lab_backupstore.compress("lz4", DATA)),
    ("gzip", lab_backupstore.compress("gzip", DATA)),
    # The reference's fallback: a header that does not match the method is retried with the other one.
    ("lz4", gzip.compress(DATA)),
    ("gzip", lz4.frame.compress(DATA)),
    (None, gzip.compress(DATA)),
], ids=["none", "gzip", "lz4", "lz4-lab-writer", "gzip-lab-writer", "lz4-cfg-gzip-block", "gzip-cfg-lz4-block", "no-method-gzip"])
def test_decompress_and_verify(method, payload):
    assert bs.decompress(payload, method) == DATA
    assert bs.verify_block(payload, method, CHECKSUM) is None


def test_verify_block_reports_damage():
    payload = bytearray(lz4.frame.compress(DATA))
    payload[len(payload) // 2] ^= 0xFF
    reason = bs.verify_block(bytes(payload), "lz4", CHECKSUM)
    assert reason is not None and "decompress" in reason
    assert "checksum mismatch" in bs.verify_block(DATA[:-1] + b"!", "none", CHECKSUM)
    with pytest.raises(bs.BackupstoreFormatError):
        bs.decompress(b"garbage", "gzip")


def test_decode_lock_age_and_type():
    now = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    fresh = bs.decode_lock(b'{"Name":"lock-0123456789abcdef","Type":2,"Acquired":true}', now - datetime.timedelta(seconds=30), now=now)
    assert fresh == {"name": "lock-0123456789abcdef", "type": "deletion", "acquired": True, "age_seconds": 30, "active": True}
    old = bs.decode_lock(b'{"Name":"lock-1","Type":1,"Acquired":false}', now - datetime.timedelta(seconds=151), now=now)
    assert (old["type"], old["active"], old["age_seconds"]) == ("backup-or-restore", False, 151)
    unreadable = bs.decode_lock(b"\x00", now - datetime.timedelta(seconds=1), now=now)
    assert (unreadable["type"], unreadable["active"]) == ("unknown", True)


def test_system_backup_cfg_and_checksum():
    zip_bytes = b"PK\x03\x04 not really a zip"
    cfg = bs.decode_system_backup_cfg(json.dumps({"Name": "sb", "LonghornVersion": "v1.10.2", "CreatedAt": "2026-01-01T01:02:03.5Z",
                                                  "Checksum": hashlib.sha256(zip_bytes).hexdigest()}))
    assert cfg["CreatedAtParsed"] == datetime.datetime(2026, 1, 1, 1, 2, 3, 500000, tzinfo=UTC)
    assert bs.sha256_hex(zip_bytes) == cfg["Checksum"]
