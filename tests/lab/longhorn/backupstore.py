# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Longhorn's backupstore layout on S3, written and read the way Longhorn does (ref §3.3, §4).

The emulator's backup controller writes backups through ``BackupStore.begin_backup``; sync and
restore read them back. The objects are the ones longhorn/backupstore writes: same keys, same
JSON (Go field order, Go string escaping, ``json:",string"`` double encoding), same lock files.
A ``BackupStore`` is thread-safe: boto3 clients are, and volume.cfg updates are serialized.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import re
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, quote_plus

import lz4.frame

from .volumedata import BLOCK_SIZE, split_blocks

BACKUPSTORE_BASE = "backupstore"
LEGACY_COMPRESSION_METHOD = "gzip"
COMPRESSION_METHODS = ("none", "lz4", "gzip")
BACKUP_BLOCK_SIZES = (2 * 1024 * 1024, 16 * 1024 * 1024)
# ref §3.3 Lock files: type 1 backup/restore, type 2 deletion; valid 150 s, refreshed every 60 s.
BACKUP_LOCK = 1
RESTORE_LOCK = 1
DELETION_LOCK = 2
LOCK_DURATION = 150.0
LOCK_REFRESH_INTERVAL = 60.0
# Names as backupstore's util.ValidateName accepts them (ref §1).
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# Volume fields Go writes with json:",string" on a string, i.e. double-encoded (ref §3.3 volume.cfg).
DOUBLE_ENCODED_FIELDS = ("BackingImageName", "BackingImageChecksum", "CompressionMethod", "StorageClassName", "DataEngine")
_QUANTITY_SUFFIXES = {"": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
                      "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


class BackupStoreError(Exception):
    """The backupstore content does not allow the operation."""


class LockError(BackupStoreError):
    """Another operation holds a conflicting lock on the backup volume (ref §3.3 Lock files)."""


class BlockError(BackupStoreError):
    def __init__(self, volume, backup, checksum, reason):
        super().__init__("block %s of backup %s of volume %s: %s" % (checksum, backup, volume, reason))
        self.volume = volume
        self.backup = backup
        self.checksum = checksum


class MissingBlock(BlockError):
    def __init__(self, volume, backup, checksum):
        super().__init__(volume, backup, checksum, "missing from the backupstore")


class CorruptBlock(BlockError):
    def __init__(self, volume, backup, checksum, reason="checksum verification failed"):
        super().__init__(volume, backup, checksum, reason)


# --- Go-compatible encoding ------------------------------------------------------------------


def go_json(value) -> bytes:
    """Compact JSON like Go's json.Marshal: no spaces, UTF-8 kept, <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def _go_string_field(value):
    """A string field tagged json:",string": the JSON encoding of the value, as a string."""
    return go_json(value or "").decode("utf-8")


def _decode_string_field(value):
    if isinstance(value, str) and value.startswith('"'):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


def _go_map(mapping):
    # Go writes a nil map as null and sorts map keys.
    if mapping is None:
        return None
    return {key: mapping[key] for key in sorted(mapping)}


def _utc(value):
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def go_time(value=None) -> str:
    """time.Now().UTC().Format(time.RFC3339), e.g. ``2026-01-02T03:04:05Z`` (backupstore util.Now)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    value = _utc(value or datetime.datetime.now(datetime.timezone.utc))
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def go_time_nano(value=None) -> str:
    """A Go time.Time in JSON (RFC3339Nano, trailing zeros of the fraction dropped)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    value = _utc(value or datetime.datetime.now(datetime.timezone.utc))
    fraction = ("%06d" % value.microsecond).rstrip("0")
    return value.strftime("%Y-%m-%dT%H:%M:%S") + ("." + fraction if fraction else "") + "Z"


def parse_go_time(text):
    """Parse an RFC3339 time as Go writes it; None for an empty string."""
    if not text:
        return None
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match and match.group(2):
        # Python takes at most 6 fraction digits, Go writes up to 9.
        text = match.group(1) + match.group(2)[:7] + match.group(3)
    return _utc(datetime.datetime.fromisoformat(text))


def _strict_go_time(text):
    # time.Parse(time.RFC3339, "") fails in Go, so an empty time is an error here too.
    parsed = parse_go_time(text or "")
    if parsed is None:
        raise ValueError("empty time")
    return parsed


def parse_quantity(text) -> int:
    """A Kubernetes quantity such as ``2097152`` or ``2Mi`` as bytes (backup-block-size)."""
    match = re.match(r"^\s*(\d+)\s*([kMGT]i?|)\s*$", str(text))
    if not match:
        raise BackupStoreError("invalid block size %r" % (text,))
    return int(match.group(1)) * _QUANTITY_SUFFIXES[match.group(2)]


def block_size_from_parameters(parameters) -> int:
    """ref §3.3 Block size: Parameters["backup-block-size"]; missing, empty or 0 means 2 MiB."""
    value = (parameters or {}).get("backup-block-size")
    if not value:
        return BLOCK_SIZE
    size = parse_quantity(value)
    return size or BLOCK_SIZE


def block_checksum(data: bytes) -> str:
    """ref §3.3 Blocks: the SHA-512 hex of the uncompressed block, truncated to 64 characters."""
    return hashlib.sha512(data).hexdigest()[:64]


def volume_hash_path(volume_name) -> str:
    """ref §3.3: ``pvc-0123abcd-test`` -> ``a7/9b``."""
    checksum = block_checksum(volume_name.encode("utf-8"))
    return "%s/%s" % (checksum[0:2], checksum[2:4])


def validate_name(name, what="name"):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BackupStoreError("invalid %s %r" % (what, name))
    return name


def compress(method, data: bytes) -> bytes:
    """ref §3.3 Compression: none, Go compress/gzip, or the LZ4 frame format (pierrec/lz4 v4 defaults)."""
    if method == "none":
        return bytes(data)
    if method == "gzip":
        return gzip.compress(data)
    if method == "lz4":
        return lz4.frame.compress(data, block_size=lz4.frame.BLOCKSIZE_MAX4MB, block_linked=False,
                                  content_checksum=True)
    raise BackupStoreError("unsupported compression method: %s" % method)


def _decompress_once(method, payload):
    if method == "none":
        return payload
    if method == "gzip":
        return gzip.decompress(payload)
    if method == "lz4":
        return lz4.frame.decompress(payload)
    raise BackupStoreError("unsupported decompression method: %s" % method)


def _is_header_error(method, exc):
    if method == "gzip":
        return isinstance(exc, gzip.BadGzipFile) and "Not a gzipped file" in str(exc)
    if method == "lz4":
        return "frameType_unknown" in str(exc) or "Unknown frame descriptor" in str(exc)
    return False


def decompress_and_verify(method, payload: bytes, checksum: str) -> bytes:
    """Decompress with ``method``; on a wrong gzip/lz4 header retry with the other one, then verify.

    Mirrors backupstore's DecompressAndVerifyWithFallback (ref §3.3 Compression). Raises
    ValueError with a reason on failure.
    """
    try:
        data = _decompress_once(method, payload)
    except (OSError, EOFError, RuntimeError, zlib.error) as exc:
        alternative = {"gzip": "lz4", "lz4": "gzip"}.get(method)
        if alternative is None or not _is_header_error(method, exc):
            raise ValueError("decompression with %s failed: %s" % (method, exc)) from exc
        try:
            data = _decompress_once(alternative, payload)
        except (OSError, EOFError, RuntimeError, zlib.error) as alt_exc:
            raise ValueError("fallback decompression with %s also failed: %s" % (alternative, alt_exc)) from alt_exc
    if block_checksum(data) != checksum:
        raise ValueError("checksum verification failed for block")
    return data


# --- backup URLs (ref §4) --------------------------------------------------------------------


def _split_url(url):
    rest, fragment = (url.split("#", 1) + [""])[:2]
    base, query = (rest.split("?", 1) + [""])[:2]
    return base, query, fragment


def encode_backup_url(backup_name, volume_name, target_url) -> str:
    """EncodeBackupURL: add volume= and backup= (if any) to the target URL, parameters sorted by key."""
    base, query, fragment = _split_url(target_url)
    params = parse_qsl(query, keep_blank_values=True)
    params.append(("volume", volume_name))
    if backup_name:
        params.append(("backup", backup_name))
    # Go's url.Values.Encode sorts by key and keeps the order of values within a key.
    params.sort(key=lambda item: item[0])
    encoded = "&".join("%s=%s" % (quote_plus(key), quote_plus(value)) for key, value in params)
    return base + "?" + encoded + ("#" + fragment if fragment else "")


def decode_backup_url(url) -> tuple[str, str]:
    """DecodeBackupURL: (backup name, volume name); the backup name may be empty."""
    query = _split_url(url)[1]
    values = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(key, value)
    volume_name = values.get("volume", "")
    backup_name = values.get("backup", "")
    if not NAME_RE.match(volume_name):
        raise BackupStoreError("invalid volume name parsed, got %r" % volume_name)
    if backup_name and not NAME_RE.match(backup_name):
        raise BackupStoreError("invalid backup name parsed, got %r" % backup_name)
    return backup_name, volume_name


def backup_target_of_url(url) -> str:
    """The target URL of a backup URL: the URL without its volume= and backup= parameters."""
    base, query, fragment = _split_url(url)
    params = sorted((item for item in parse_qsl(query, keep_blank_values=True) if item[0] not in ("volume", "backup")),
                    key=lambda item: item[0])
    encoded = "&".join("%s=%s" % (quote_plus(key), quote_plus(value)) for key, value in params)
    return base + ("?" + encoded if encoded else "") + ("#" + fragment if fragment else "")


# --- config documents ------------------------------------------------------------------------


def _volume_doc(cfg):
    """volume.cfg in Go field order (backupstore.go Volume)."""
    return {
        "Name": cfg["Name"],
        "Size": str(int(cfg.get("Size") or 0)),
        "Labels": _go_map(cfg.get("Labels")),
        "CreatedTime": cfg.get("CreatedTime", ""),
        "LastBackupName": cfg.get("LastBackupName", ""),
        "LastBackupAt": cfg.get("LastBackupAt", ""),
        "BlockCount": str(int(cfg.get("BlockCount") or 0)),
        "BackingImageName": _go_string_field(cfg.get("BackingImageName")),
        "BackingImageChecksum": _go_string_field(cfg.get("BackingImageChecksum")),
        "CompressionMethod": _go_string_field(cfg.get("CompressionMethod")),
        "StorageClassName": _go_string_field(cfg.get("StorageClassName")),
        "DataEngine": _go_string_field(cfg.get("DataEngine")),
    }


def _decode_volume_doc(doc):
    cfg = dict(doc)
    for field in DOUBLE_ENCODED_FIELDS:
        cfg[field] = _decode_string_field(cfg.get(field, ""))
    for field in ("Size", "BlockCount"):
        cfg[field] = int(cfg.get(field) or 0)
    # loadVolume's backward compatibility (ref §3.3 Compression, volume.cfg).
    cfg["CompressionMethod"] = cfg["CompressionMethod"] or LEGACY_COMPRESSION_METHOD
    cfg["DataEngine"] = cfg["DataEngine"] or "v1"
    return cfg


def _backup_doc(cfg, processing_blocks=None):
    """backup_<name>.cfg in Go field order (backupstore.go Backup)."""
    doc = {
        "Name": cfg["Name"],
        "VolumeName": cfg["VolumeName"],
        "SnapshotName": cfg.get("SnapshotName", ""),
        "SnapshotCreatedAt": cfg.get("SnapshotCreatedAt", ""),
        "CreatedTime": cfg.get("CreatedTime", ""),
        "Size": str(int(cfg.get("Size") or 0)),
        "Labels": _go_map(cfg.get("Labels")),
        "Parameters": _go_map(cfg.get("Parameters")),
        "IsIncremental": bool(cfg.get("IsIncremental")),
        "CompressionMethod": cfg.get("CompressionMethod", ""),
        "NewlyUploadedDataSize": str(int(cfg.get("NewlyUploadedDataSize") or 0)),
        "ReUploadedDataSize": str(int(cfg.get("ReUploadedDataSize") or 0)),
        # A runtime-only struct: {} while the delta backup object carries it, null otherwise.
        "ProcessingBlocks": processing_blocks,
    }
    blocks = cfg.get("Blocks") or []
    if blocks:  # json:",omitempty"
        doc["Blocks"] = [{"Offset": int(block["Offset"]), "BlockChecksum": block["BlockChecksum"]} for block in blocks]
    doc["SingleFile"] = {"FilePath": (cfg.get("SingleFile") or {}).get("FilePath", "")}
    return doc


def _decode_backup_doc(doc):
    cfg = dict(doc)
    for field in ("Size", "NewlyUploadedDataSize", "ReUploadedDataSize"):
        cfg[field] = int(cfg.get(field) or 0)
    cfg["Blocks"] = list(cfg.get("Blocks") or [])
    # loadBackup's backward compatibility.
    cfg["CompressionMethod"] = cfg.get("CompressionMethod") or LEGACY_COMPRESSION_METHOD
    return cfg


def _merge_block_maps(delta, last):
    """mergeSnapshotMap: blocks of this backup win, the last backup's fill the other offsets."""
    merged = {block["Offset"]: block for block in last}
    merged.update({block["Offset"]: block for block in delta})
    return [merged[offset] for offset in sorted(merged)]


# --- the store -------------------------------------------------------------------------------


class _FileLock:
    """A backupstore lock file (ref §3.3 Lock files; backupstore lock.go)."""

    def __init__(self, store, volume_name, lock_type):
        self.store = store
        self.volume = volume_name
        self.type = lock_type
        self.name = "lock-" + uuid.uuid4().hex[:16]
        self.acquired = False
        self._saved_at = 0.0
        self._mutex = threading.Lock()

    @property
    def key(self):
        return self.store.volume_path(self.volume) + "locks/%s.lck" % self.name

    def _save(self):
        self.store.put(self.key, go_json({"Name": self.name, "Type": self.type, "Acquired": self.acquired}))
        self._saved_at = time.monotonic()

    def acquire(self):
        operation = "delete" if self.type == DELETION_LOCK else "create/restore"
        self._save()
        # Longhorn waits 2 s so that concurrent writers see each other's lock files.
        if self.store.lock_check_wait:
            time.sleep(self.store.lock_check_wait)
        ours = None
        others = []
        for lock in self.store.read_locks(self.volume):
            if lock["Name"] == self.name:
                ours = lock
            else:
                others.append(lock)
        ours = ours or {"Name": self.name, "Acquired": False, "LastModified": datetime.datetime.now(datetime.timezone.utc)}
        now = datetime.datetime.now(datetime.timezone.utc)
        for lock in others:
            expired = (now - lock["LastModified"]).total_seconds() > LOCK_DURATION
            if lock["Type"] != self.type and _lock_order(lock) < _lock_order(ours) and not expired:
                self.store.delete(self.key)
                raise LockError("failed to acquire lock %s when performing backup %s, please try again later"
                                % (self.key, operation))
        self.acquired = True
        self._save()
        return self

    def refresh(self):
        with self._mutex:
            if self.acquired and time.monotonic() - self._saved_at >= LOCK_REFRESH_INTERVAL:
                self._save()

    def release(self):
        with self._mutex:
            self.acquired = False
            self.store.delete(self.key)


def _lock_order(lock):
    # compareLocks: acquired locks first, then older LastModified, then name.
    return (not lock["Acquired"], lock["LastModified"], lock["Name"])


class BackupStore:
    """One backup target: ``s3://<bucket>@<region>/<prefix>`` (ref §3.1, §3.3)."""

    def __init__(self, s3_client, bucket: str, prefix: str = "", *, lock_check_wait: float = 0.0):
        self.s3 = s3_client
        self.bucket = bucket
        prefix = (prefix or "").strip("/")
        # ref §3.3: keys start at "<URL path>backupstore/".
        self.prefix = prefix + "/" if prefix else ""
        self.base = self.prefix + BACKUPSTORE_BASE + "/"
        self.lock_check_wait = lock_check_wait
        self._volume_locks = {}
        self._volume_locks_guard = threading.Lock()

    def __repr__(self):
        return "BackupStore(bucket=%r, prefix=%r)" % (self.bucket, self.prefix)

    # S3 primitives -----------------------------------------------------------------------

    def get(self, key):
        """The object's bytes, or None when it does not exist."""
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None

    def put(self, key, data):
        # One single-part PutObject per file, like backupstore's Driver.Write.
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def exists(self, key):
        from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise

    def delete(self, key):
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def list_dir(self, prefix):
        """Names directly below ``prefix`` (files and sub-directories), like the S3 driver's List."""
        if not prefix.endswith("/"):
            prefix += "/"
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names.extend(obj["Key"][len(prefix):] for obj in page.get("Contents", []))
            names.extend(item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", []))
        return [name for name in names if name]

    def list_objects(self, prefix):
        """Every object under ``prefix`` (no delimiter), as list_objects_v2 entries."""
        objects = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            objects.extend(page.get("Contents", []))
        return objects

    def delete_prefix(self, prefix):
        """Remove every object under ``prefix``, one DeleteObject each (the S3 driver's Remove)."""
        for obj in self.list_objects(prefix):
            self.delete(obj["Key"])

    # paths -------------------------------------------------------------------------------

    def volume_path(self, volume_name) -> str:
        return "%svolumes/%s/%s/" % (self.base, volume_hash_path(volume_name), volume_name)

    def volume_cfg_key(self, volume_name):
        return self.volume_path(volume_name) + "volume.cfg"

    def backup_cfg_key(self, volume_name, backup_name):
        return self.volume_path(volume_name) + "backups/backup_%s.cfg" % backup_name

    def block_key(self, volume_name, checksum):
        return self.volume_path(volume_name) + "blocks/%s/%s/%s.blk" % (checksum[0:2], checksum[2:4], checksum)

    def system_backup_path(self, version, name):
        return "%ssystem-backups/%s/%s/" % (self.base, version, name)

    def _volume_lock(self, volume_name):
        with self._volume_locks_guard:
            return self._volume_locks.setdefault(volume_name, threading.RLock())

    # volumes -----------------------------------------------------------------------------

    def list_volume_names(self) -> list[str]:
        """ref §3.3 Listing recipe: h1 prefixes, then h2 prefixes, then volume names, delimiter "/"."""
        names = []
        root = self.base + "volumes/"
        for level1 in self.list_dir(root):
            for level2 in self.list_dir(root + level1 + "/"):
                names.extend(self.list_dir("%s%s/%s/" % (root, level1, level2)))
        return sorted(name for name in names if NAME_RE.match(name))

    def read_volume_cfg(self, volume_name) -> dict | None:
        raw = self.get(self.volume_cfg_key(volume_name))
        if raw is None:
            return None
        return _decode_volume_doc(json.loads(raw))

    def write_volume_cfg(self, cfg) -> None:
        """Write volume.cfg from decoded values (double encoding and string numbers applied here)."""
        self.put(self.volume_cfg_key(cfg["Name"]), go_json(_volume_doc(cfg)))

    def delete_volume(self, volume_name) -> None:
        """DeleteBackupVolume: deletion lock, then backups/, blocks/, locks/ and the directory."""
        validate_name(volume_name, "volume name")
        if volume_name not in self.list_volume_names():
            return
        lock = _FileLock(self, volume_name, DELETION_LOCK).acquire()
        path = self.volume_path(volume_name)
        with self._volume_lock(volume_name):
            for sub in ("backups/", "blocks/", "locks/", ""):
                self.delete_prefix(path + sub)
        lock.release()

    def list_block_checksums(self, volume_name) -> list[str]:
        """Checksums of the block files of a volume (three listing levels, like getBlockNamesForVolume)."""
        root = self.volume_path(volume_name) + "blocks/"
        names = []
        for level1 in self.list_dir(root):
            for level2 in self.list_dir(root + level1 + "/"):
                names.extend(self.list_dir("%s%s/%s/" % (root, level1, level2)))
        return sorted(name[:-len(".blk")] for name in names if name.endswith(".blk"))

    # backups -----------------------------------------------------------------------------

    def list_backup_names(self, volume_name) -> list[str]:
        names = []
        for entry in self.list_dir(self.volume_path(volume_name) + "backups/"):
            if entry.startswith("backup_") and entry.endswith(".cfg"):
                name = entry[len("backup_"):-len(".cfg")]
                if NAME_RE.match(name):
                    names.append(name)
        return sorted(names)

    def read_backup_cfg(self, volume_name, backup_name) -> dict | None:
        raw = self.get(self.backup_cfg_key(volume_name, backup_name))
        if raw is None:
            return None
        return _decode_backup_doc(json.loads(raw))

    def write_backup_cfg(self, cfg, processing_blocks=None) -> None:
        self.put(self.backup_cfg_key(cfg["VolumeName"], cfg["Name"]), go_json(_backup_doc(cfg, processing_blocks)))

    def begin_backup(self, volume_name, backup_name, *, compression="lz4", block_size=BLOCK_SIZE,
                     backup_mode="incremental", volume_size=None, labels=None, created_at=None,
                     storage_class_name="", data_engine="v1", backing_image_name="",
                     backing_image_checksum="") -> "BackupWriter":
        """Lock the volume, create volume.cfg if needed and write the in-progress stub cfg.

        With ``volume_size`` the volume.cfg of a new backup volume is written now, as Longhorn
        does before any block; without it, at ``finish``.
        """
        return BackupWriter(self, volume_name, backup_name, compression=compression, block_size=block_size,
                            backup_mode=backup_mode, volume_size=volume_size, labels=labels, created_at=created_at,
                            storage_class_name=storage_class_name, data_engine=data_engine,
                            backing_image_name=backing_image_name, backing_image_checksum=backing_image_checksum)

    def delete_backup(self, volume_name, backup_name) -> None:
        """DeleteDeltaBlockBackup (ref §3.3 Deleting a backup)."""
        validate_name(volume_name, "volume name")
        validate_name(backup_name, "backup name")
        lock = _FileLock(self, volume_name, DELETION_LOCK).acquire()
        try:
            with self._volume_lock(volume_name):
                self._delete_backup_locked(volume_name, backup_name)
        finally:
            lock.release()

    def _delete_backup_locked(self, volume_name, backup_name):
        self.delete(self.backup_cfg_key(volume_name, backup_name))
        volume = self.read_volume_cfg(volume_name)
        if volume is None:
            raise BackupStoreError("cannot find volume %s in backupstore" % volume_name)
        update_last = volume["LastBackupName"] == backup_name
        if update_last:
            volume["LastBackupName"] = ""
            volume["LastBackupAt"] = ""

        delete_blocks = True
        backup_names = self.list_backup_names(volume_name)
        refcount = {checksum: 0 for checksum in self.list_block_checksums(volume_name)}
        present = set(refcount)
        latest = None
        for name in backup_names:
            try:
                backup = self.read_backup_cfg(volume_name, name)
            except ValueError:
                backup = None
            if backup is None or not backup.get("CreatedTime"):
                # An unreadable or in-progress backup: skip the GC.
                delete_blocks = False
                break
            for block in backup["Blocks"]:
                refcount[block["BlockChecksum"]] = refcount.get(block["BlockChecksum"], 0) + 1
            if update_last:
                # getLatestBackup: the first one, then any with a later SnapshotCreatedAt.
                if latest is None or not latest.get("SnapshotCreatedAt"):
                    latest = backup
                    continue
                try:
                    newer = _strict_go_time(backup.get("SnapshotCreatedAt")) > _strict_go_time(latest["SnapshotCreatedAt"])
                except ValueError:
                    delete_blocks = False
                    break
                if newer:
                    latest = backup
        if update_last:
            if delete_blocks and latest is not None:
                volume["LastBackupName"] = latest["Name"]
                volume["LastBackupAt"] = latest.get("SnapshotCreatedAt", "")
            self.write_volume_cfg(volume)

        if self.list_backup_names(volume_name) != backup_names:
            delete_blocks = False  # new backups appeared meanwhile
        if not delete_blocks:
            return
        active = 0
        for checksum, count in refcount.items():
            if checksum in present and count == 0:
                self.delete(self.block_key(volume_name, checksum))
            elif checksum in present:
                active += 1
        volume = self.read_volume_cfg(volume_name)
        volume["BlockCount"] = active
        self.write_volume_cfg(volume)

    def read_image(self, volume_name, backup_name, *, on_block=None, workers=2, lock=True) -> tuple[bytes, int]:
        """Restore a backup: (image of the volume size, size). Every block is checksum-verified.

        ``on_block(done, total)`` is called after each block. A restore takes a lock file like
        Longhorn's (so it needs PutObject/DeleteObject rights). Raises MissingBlock or CorruptBlock.
        """
        restore_lock = _FileLock(self, volume_name, RESTORE_LOCK).acquire() if lock else None
        try:
            volume = self.read_volume_cfg(volume_name)
            if volume is None:
                raise BackupStoreError("source volume %s doesn't exist in backupstore" % volume_name)
            size = volume["Size"]
            if size <= 0:
                raise BackupStoreError("invalid volume size %d" % size)
            backup = self.read_backup_cfg(volume_name, backup_name)
            if backup is None:
                raise BackupStoreError("cannot find backup %s of volume %s in backupstore" % (backup_name, volume_name))
            if not backup.get("CreatedTime"):
                raise BackupStoreError("backup %s of volume %s is in progress or incomplete" % (backup_name, volume_name))
            block_size = block_size_from_parameters(backup.get("Parameters"))
            if size % block_size:
                raise BackupStoreError("volume size %d is not a multiple of block size %d" % (size, block_size))
            image = bytearray(size)
            method = backup["CompressionMethod"]
            blocks = backup["Blocks"]
            progress = {"done": 0}
            progress_lock = threading.Lock()

            def fetch(block):
                checksum = block["BlockChecksum"]
                payload = self.get(self.block_key(volume_name, checksum))
                if payload is None:
                    raise MissingBlock(volume_name, backup_name, checksum)
                try:
                    data = decompress_and_verify(method, payload, checksum)
                except ValueError as exc:
                    raise CorruptBlock(volume_name, backup_name, checksum, str(exc)) from exc
                offset = int(block["Offset"])
                if len(data) != block_size or offset % block_size or offset + block_size > size:
                    raise CorruptBlock(volume_name, backup_name, checksum,
                                       "block of %d bytes at offset %d does not fit" % (len(data), offset))
                image[offset:offset + block_size] = data
                with progress_lock:
                    progress["done"] += 1
                    done = progress["done"]
                if restore_lock is not None:
                    restore_lock.refresh()
                if on_block is not None:
                    on_block(done, len(blocks))

            if workers and workers > 1 and len(blocks) > 1:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-restore") as pool:
                    for future in [pool.submit(fetch, block) for block in blocks]:
                        future.result()
            else:
                for block in blocks:
                    fetch(block)
            return bytes(image), size
        finally:
            if restore_lock is not None:
                restore_lock.release()

    # locks -------------------------------------------------------------------------------

    def read_locks(self, volume_name) -> list[dict]:
        """Every lock file of the volume: Name, Type, Acquired, LastModified (aware datetime), Key."""
        locks = []
        for obj in self.list_objects(self.volume_path(volume_name) + "locks/"):
            if not obj["Key"].endswith(".lck"):
                continue
            raw = self.get(obj["Key"])
            if raw is None:
                continue  # removed since the listing
            try:
                doc = json.loads(raw)
            except ValueError:
                continue  # backupstore skips locks it cannot load
            locks.append({"Name": doc.get("Name", ""), "Type": doc.get("Type", 0), "Acquired": bool(doc.get("Acquired")),
                          "LastModified": _utc(obj["LastModified"]), "Key": obj["Key"]})
        return locks

    def active_locks(self, volume_name, now=None) -> list[dict]:
        """Locks younger than 150 s (ref §3.3 Lock files); older ones are leftovers of a crash."""
        if now is None:
            now = datetime.datetime.now(datetime.timezone.utc)
        elif isinstance(now, (int, float)):
            now = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        now = _utc(now)
        return [lock for lock in self.read_locks(volume_name)
                if (now - lock["LastModified"]).total_seconds() <= LOCK_DURATION]

    # system backups (ref §3.3 System backups) ----------------------------------------------

    def write_system_backup(self, version, name, zip_bytes, *, manager_image, engine_image, git_commit, target_url,
                            created_at) -> dict:
        validate_name(name, "system backup name")
        path = self.system_backup_path(version, name)
        if self.exists(path + "system-backup.zip"):
            raise BackupStoreError("%ssystem-backup.zip already exists" % path)
        cfg = {
            "Name": name,
            "LonghornVersion": version,
            "LonghornGitCommit": git_commit,
            "BackupTargetURL": target_url,
            "ManagerImage": manager_image,
            "EngineImage": engine_image,
            "CreatedAt": go_time_nano(created_at),
            # SHA-256 despite backupstore's variable name "sha512sum".
            "Checksum": hashlib.sha256(zip_bytes).hexdigest(),
        }
        # The zip first, then the cfg (systembackup.Upload).
        self.put(path + "system-backup.zip", zip_bytes)
        self.put(path + "system-backup.cfg", go_json(cfg))
        return cfg

    def read_system_backup_cfg(self, version, name) -> dict | None:
        raw = self.get(self.system_backup_path(version, name) + "system-backup.cfg")
        return None if raw is None else json.loads(raw)

    def list_system_backups(self) -> list[dict]:
        root = self.base + "system-backups/"
        found = []
        for version in self.list_dir(root):
            for name in self.list_dir(root + version + "/"):
                found.append({"name": name, "version": version, "cfg": self.read_system_backup_cfg(version, name)})
        return sorted(found, key=lambda item: (item["version"], item["name"]))

    def read_system_backup_zip(self, version, name) -> bytes:
        cfg = self.read_system_backup_cfg(version, name)
        if cfg is None:
            raise BackupStoreError("system backup %s/%s has no system-backup.cfg" % (version, name))
        key = self.system_backup_path(version, name) + "system-backup.zip"
        data = self.get(key)
        if data is None:
            raise BackupStoreError("system backup %s doesn't exist" % key)
        checksum = hashlib.sha256(data).hexdigest()
        if checksum != cfg.get("Checksum"):
            raise BackupStoreError("downloaded %s checksum mismatched: got %s: expect %s" % (key, checksum, cfg.get("Checksum")))
        return data

    def delete_system_backup(self, version, name) -> None:
        self.delete_prefix(self.system_backup_path(version, name))


class BackupWriter:
    """One running volume backup (backupstore CreateDeltaBlockBackup / performBackup).

    Blocks may be uploaded from several threads. An incremental backup inherits the last
    backup's blocks at offsets not uploaded now (the cfg holds the full block map, ref §3.3),
    so a caller that uploads whole images must upload zero blocks where data was removed;
    ``write_image`` does that.
    """

    def __init__(self, store, volume_name, backup_name, *, compression, block_size, backup_mode, volume_size,
                 labels, created_at, storage_class_name, data_engine, backing_image_name, backing_image_checksum):
        validate_name(volume_name, "volume name")
        validate_name(backup_name, "backup name")
        if compression not in COMPRESSION_METHODS:
            raise BackupStoreError("unsupported compression method: %s" % compression)
        if backup_mode not in ("full", "incremental", ""):
            raise BackupStoreError("invalid backup mode %r" % backup_mode)
        if int(block_size) <= 0:
            raise BackupStoreError("invalid block size %r" % block_size)
        self.store = store
        self.volume_name = volume_name
        self.backup_name = backup_name
        self.block_size = int(block_size)
        self.backup_mode = backup_mode or "incremental"
        self.labels = labels
        self.created_at = created_at
        self.storage_class_name = storage_class_name
        self.data_engine = data_engine
        self.backing_image_name = backing_image_name
        self.backing_image_checksum = backing_image_checksum
        self.finished = False
        self._mutex = threading.Lock()
        self._blocks = {}
        self._inflight = {}
        self._new_blocks = 0
        self._newly_uploaded = 0
        self._re_uploaded = 0

        self._lock = _FileLock(store, volume_name, BACKUP_LOCK).acquire()
        try:
            with store._volume_lock(volume_name):  # pylint: disable=protected-access
                volume = store.read_volume_cfg(volume_name)
                if volume is None and volume_size is not None:
                    volume = self._add_volume(volume_size, compression, created_at)
            # The stored volume's compression method and data engine stick (CreateDeltaBlockBackup).
            self.compression = volume["CompressionMethod"] if volume else compression
            self._volume_known = volume is not None
            self._last_backup = None
            if volume and volume["LastBackupName"] and self.backup_mode != "full":
                self._last_backup = store.read_backup_cfg(volume_name, volume["LastBackupName"])
            # The in-progress stub: only Name, VolumeName and CompressionMethod (performBackup).
            store.write_backup_cfg({"Name": backup_name, "VolumeName": volume_name, "CompressionMethod": self.compression,
                                    "CreatedTime": ""})
        except Exception:
            self._lock.release()
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None and not self.finished:
            self.abort()

    def _add_volume(self, volume_size, compression, created_at):
        # addVolume writes the backup volume before any block; DataEngine stays empty for v1 (read as v1).
        cfg = {"Name": self.volume_name, "Size": int(volume_size), "Labels": self.labels, "CreatedTime": go_time(created_at),
               "LastBackupName": "", "LastBackupAt": "", "BlockCount": 0,
               "BackingImageName": self.backing_image_name, "BackingImageChecksum": self.backing_image_checksum,
               "CompressionMethod": compression, "StorageClassName": self.storage_class_name,
               "DataEngine": "" if self.data_engine == "v1" else self.data_engine}
        self.store.write_volume_cfg(cfg)
        return _decode_volume_doc(_volume_doc(cfg))

    @property
    def is_incremental_base(self) -> bool:
        """True when a previous backup's block map will be merged into this one."""
        return self._last_backup is not None

    @property
    def inherited_offsets(self) -> list[int]:
        """Offsets the last backup maps; not uploading them now keeps the old blocks there."""
        if self._last_backup is None:
            return []
        return sorted(int(block["Offset"]) for block in self._last_backup["Blocks"])

    def upload_block(self, offset: int, data: bytes) -> int:
        """Upload one block unless it already exists; returns the compressed bytes sent."""
        if self.finished:
            raise BackupStoreError("backup %s is already finished" % self.backup_name)
        if offset % self.block_size or len(data) != self.block_size:
            raise BackupStoreError("block at offset %d with %d bytes does not match the block size %d"
                                   % (offset, len(data), self.block_size))
        checksum = block_checksum(data)
        with self._mutex:
            if checksum in self._inflight:
                # Another thread uploads the same content (isBlockBeingProcessed).
                self._inflight[checksum].append(offset)
                return 0
            self._inflight[checksum] = [offset]
        key = self.store.block_key(self.volume_name, checksum)
        sent = 0
        re_upload = False
        try:
            exists = self.store.exists(key)
            if not exists or self.backup_mode == "full":
                re_upload = exists
                payload = compress(self.compression, data)
                self.store.put(key, payload)
                sent = len(payload)
        except Exception:
            with self._mutex:
                self._inflight.pop(checksum, None)
            raise
        with self._mutex:
            for mapped in self._inflight.pop(checksum):
                self._blocks[mapped] = checksum
            if re_upload:
                self._re_uploaded += sent
            elif sent:
                self._newly_uploaded += sent
                self._new_blocks += 1
        self._lock.refresh()
        return sent

    def write_image(self, image: bytes, *, workers: int = 1) -> int:
        """Back up a whole volume image: its non-zero blocks, plus zero blocks where the last backup had data."""
        if len(image) % self.block_size:
            image = bytes(image) + bytes(self.block_size - len(image) % self.block_size)
        blocks = dict(split_blocks(image, self.block_size))
        zero = bytes(self.block_size)
        for offset in self.inherited_offsets:
            # Also past the end of a shorter image: the volume still has those blocks.
            blocks.setdefault(offset, zero)
        items = sorted(blocks.items())
        if workers > 1 and len(items) > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-backup") as pool:
                return sum(future.result() for future in [pool.submit(self.upload_block, *item) for item in items])
        return sum(self.upload_block(offset, data) for offset, data in items)

    def finish(self, *, snapshot_name, snapshot_created_at, created_at, volume_size, labels, backup_mode=None,
               is_incremental=None, storage_class_name=None, data_engine=None, backing_image_name=None,
               backing_image_checksum=None, parameters=None) -> dict:
        """Write the final cfg, update volume.cfg, remove the lock; returns the decoded cfg.

        Volume fields left as None keep the values given to ``begin_backup``. ``parameters``
        defaults to what v1.10 writes: backup-mode and backup-block-size.
        """
        for field, value in (("storage_class_name", storage_class_name), ("data_engine", data_engine),
                             ("backing_image_name", backing_image_name), ("backing_image_checksum", backing_image_checksum)):
            if value is not None:
                setattr(self, field, value)
        if self.finished:
            raise BackupStoreError("backup %s is already finished" % self.backup_name)
        with self._mutex:
            if self._inflight:
                raise BackupStoreError("blocks of backup %s are still being uploaded" % self.backup_name)
            delta = [{"Offset": offset, "BlockChecksum": self._blocks[offset]} for offset in sorted(self._blocks)]
        mode = backup_mode or self.backup_mode
        last = self._last_backup
        if last is not None and last.get("SnapshotName") == snapshot_name:
            last = None  # the same snapshot again is backed up in full
        blocks = _merge_block_maps(delta, last["Blocks"]) if last is not None else delta
        if parameters is None:
            parameters = {"backup-mode": mode, "backup-block-size": str(self.block_size)}
        cfg = {
            "Name": self.backup_name,
            "VolumeName": self.volume_name,
            "SnapshotName": snapshot_name,
            "SnapshotCreatedAt": go_time(snapshot_created_at),
            "CreatedTime": go_time(created_at),
            "Size": len(blocks) * self.block_size,
            "Labels": labels,
            "Parameters": parameters,
            "IsIncremental": (last is not None) if is_incremental is None else bool(is_incremental),
            "CompressionMethod": self.compression,
            "NewlyUploadedDataSize": self._newly_uploaded,
            "ReUploadedDataSize": self._re_uploaded,
            "Blocks": blocks,
        }
        try:
            # The merged cfg is a new Go object without ProcessingBlocks; the delta object has one.
            self.store.write_backup_cfg(cfg, processing_blocks=None if last is not None else {})
            with self.store._volume_lock(self.volume_name):  # pylint: disable=protected-access
                volume = self.store.read_volume_cfg(self.volume_name)
                if volume is None:
                    self.labels = labels
                    volume = self._add_volume(volume_size, self.compression, snapshot_created_at)
                volume.update({
                    "LastBackupName": self.backup_name,
                    "LastBackupAt": cfg["SnapshotCreatedAt"],
                    "BlockCount": volume["BlockCount"] + self._new_blocks,
                    "Size": int(volume_size),
                    "Labels": labels,
                    "BackingImageName": self.backing_image_name,
                    "BackingImageChecksum": self.backing_image_checksum,
                    "StorageClassName": self.storage_class_name,
                })
                # CompressionMethod and DataEngine keep the stored values (performBackup).
                self.store.write_volume_cfg(volume)
        finally:
            self.finished = True
            self._lock.release()
        return _decode_backup_doc(_backup_doc(cfg))

    def abort(self, *, leave_lock=False) -> None:
        """Stop like a crashed backup: the stub cfg (empty CreatedTime) and uploaded blocks stay."""
        if self.finished:
            return
        self.finished = True
        if not leave_lock:
            self._lock.release()
