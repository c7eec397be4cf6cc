# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE to homelab.longhorn_dr: it may change at any time.

"""Read Longhorn's backupstore layout (volume.cfg, backup cfgs, blocks) from plain bytes.

Pure functions: no S3 client here, so they are easy to test and to reuse from
minio_bucket_check and the restore planner.  The layout follows Longhorn's
backupstore package (github.com/longhorn/backupstore): config.go, deltablock.go,
lock.go, util/util.go.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import traceback
import zlib

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import parse_rfc3339

try:
    import lz4.frame
    HAS_LZ4 = True
    LZ4_IMPORT_ERROR = None
except ImportError:
    HAS_LZ4 = False
    LZ4_IMPORT_ERROR = traceback.format_exc()

BACKUPSTORE_BASE = "backupstore"
DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
# Longhorn counts DataStored as BlockCount x 2 MiB whatever the block size (backupstore inspect.go).
DATA_STORED_BLOCK_SIZE = 2 * 1024 * 1024
LOCK_VALIDITY_SECONDS = 150
LEGACY_COMPRESSION_METHOD = "gzip"
COMPRESSION_METHODS = ("none", "lz4", "gzip")
# volume.cfg string fields tagged `json:",string"` in Go: stored with an extra layer of quotes.
DOUBLE_ENCODED_VOLUME_FIELDS = ("BackingImageName", "BackingImageChecksum", "CompressionMethod", "StorageClassName", "DataEngine")
GZIP_MAGIC = b"\x1f\x8b"
LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


class BackupstoreFormatError(ValueError):
    """An object in the bucket is not in the format Longhorn writes."""


def backupstore_root(prefix=""):
    """Key prefix of the backupstore for a target path: ``""`` -> ``backupstore/``, ``a/b`` -> ``a/b/backupstore/``."""
    prefix = (prefix or "").strip("/")
    return "%s/%s/" % (prefix, BACKUPSTORE_BASE) if prefix else BACKUPSTORE_BASE + "/"


def name_checksum(text):
    """Longhorn's GetChecksum: SHA-512 hex truncated to 64 characters (the Go comment says SHA-256; the code does SHA-512)."""
    return hashlib.sha512(text if isinstance(text, bytes) else text.encode("utf-8")).hexdigest()[:64]


def block_checksum(data):
    return name_checksum(data)


def volume_hash_path(volume_name):
    digest = name_checksum(volume_name)
    return "%s/%s" % (digest[0:2], digest[2:4])


def volume_dir(root, volume_name):
    return "%svolumes/%s/%s/" % (root, volume_hash_path(volume_name), volume_name)


def volume_cfg_key(root, volume_name):
    return volume_dir(root, volume_name) + "volume.cfg"


def backup_cfg_key(root, volume_name, backup_name):
    return "%sbackups/backup_%s.cfg" % (volume_dir(root, volume_name), backup_name)


def block_key(root, volume_name, checksum):
    return "%sblocks/%s/%s/%s.blk" % (volume_dir(root, volume_name), checksum[0:2], checksum[2:4], checksum)


def backup_name_from_cfg_key(key):
    """``.../backups/backup_<name>.cfg`` -> ``<name>``, or None for other keys."""
    base = key.rsplit("/", 1)[-1]
    if base.startswith("backup_") and base.endswith(".cfg"):
        return base[len("backup_"):-len(".cfg")]
    return None


def parse_go_time(value):
    """Parse the RFC 3339 times Go writes (``Z`` or offsets, optional fractional seconds). Empty -> None."""
    if not value:
        return None
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise BackupstoreFormatError("not an RFC 3339 time: %r" % value)
    return parsed


def _undouble(value):
    """Decode one ``json:",string"`` string field: ``"\\"lz4\\""`` -> ``lz4``; tolerate plain strings."""
    if not isinstance(value, str):
        return value
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


def _int_field(cfg, key, default=0):
    value = cfg.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BackupstoreFormatError("%s is not an integer: %r" % (key, value)) from None


def _load_json(raw, what):
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupstoreFormatError("%s is not valid JSON: %s" % (what, exc)) from None
    if not isinstance(data, dict):
        raise BackupstoreFormatError("%s is not a JSON object" % what)
    return data


def decode_volume_cfg(raw):
    """volume.cfg -> dict with plain values (sizes as int, double-encoded strings decoded, times parsed)."""
    cfg = _load_json(raw, "volume.cfg")
    decoded = dict(cfg)
    for field in DOUBLE_ENCODED_VOLUME_FIELDS:
        if field in decoded:
            decoded[field] = _undouble(decoded[field])
    decoded["Size"] = _int_field(cfg, "Size")
    decoded["BlockCount"] = _int_field(cfg, "BlockCount")
    decoded["Labels"] = cfg.get("Labels") or {}
    decoded["CompressionMethod"] = decoded.get("CompressionMethod") or LEGACY_COMPRESSION_METHOD
    decoded["DataEngine"] = decoded.get("DataEngine") or "v1"
    decoded["LastBackupAtTime"] = parse_go_time(cfg.get("LastBackupAt"))
    decoded["CreatedTimeParsed"] = parse_go_time(cfg.get("CreatedTime"))
    return decoded


def decode_backup_cfg(raw):
    """backup_<name>.cfg -> dict; ``Complete`` is False for a stub (empty CreatedTime: running or aborted)."""
    cfg = _load_json(raw, "backup cfg")
    decoded = dict(cfg)
    decoded["Size"] = _int_field(cfg, "Size")
    decoded["Labels"] = cfg.get("Labels") or {}
    decoded["Blocks"] = cfg.get("Blocks") or []
    decoded["CompressionMethod"] = cfg.get("CompressionMethod") or LEGACY_COMPRESSION_METHOD
    decoded["Parameters"] = cfg.get("Parameters") or {}
    decoded["CreatedTimeParsed"] = parse_go_time(cfg.get("CreatedTime"))
    decoded["SnapshotCreatedAtParsed"] = parse_go_time(cfg.get("SnapshotCreatedAt"))
    decoded["Complete"] = bool(cfg.get("CreatedTime"))
    decoded["BlockSize"] = block_size_of(decoded)
    return decoded


def block_size_of(backup_cfg):
    """Parameters["backup-block-size"], missing or empty meaning 2 MiB (backupstore util.go getBlockSizeFromParameters)."""
    value = (backup_cfg.get("Parameters") or {}).get("backup-block-size")
    if not value:
        return DEFAULT_BLOCK_SIZE
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BackupstoreFormatError("backup-block-size is not an integer: %r" % value) from None


def kubernetes_status(labels):
    """The ``KubernetesStatus`` label (JSON) as a dict, or {} when absent or unreadable."""
    raw = (labels or {}).get("KubernetesStatus")
    if not raw:
        return {}
    try:
        status = json.loads(raw)
    except ValueError:
        return {}
    return status if isinstance(status, dict) else {}


def decompress(data, method):
    """Decompress a block with ``method``; on a header mismatch retry with the other of gzip/lz4, as restore does."""
    method = method or LEGACY_COMPRESSION_METHOD
    if method == "none":
        return data
    order = [method] + [m for m in ("lz4", "gzip") if m != method]
    last_error = None
    for candidate in order:
        try:
            return _decompress_one(data, candidate)
        except (OSError, EOFError, ValueError, RuntimeError, zlib.error) as exc:
            last_error = exc
    raise BackupstoreFormatError("cannot decompress block as %s: %s" % (" or ".join(order), last_error))


def _decompress_one(data, method):
    if method == "gzip":
        if not data.startswith(GZIP_MAGIC):
            raise ValueError("no gzip header")
        return gzip.decompress(data)
    if method == "lz4":
        if not HAS_LZ4:
            raise RuntimeError("the lz4 Python package is required to read lz4 blocks")
        if not data.startswith(LZ4_FRAME_MAGIC):
            raise ValueError("no lz4 frame header")
        return lz4.frame.decompress(data)
    raise ValueError("unknown compression method %r" % method)


def verify_block(data, method, checksum):
    """Return None when the block decompresses to data whose truncated SHA-512 is ``checksum``, else the reason."""
    try:
        plain = decompress(data, method)
    except BackupstoreFormatError as exc:
        return str(exc)
    actual = block_checksum(plain)
    if actual != checksum:
        return "checksum mismatch: content hashes to %s" % actual
    return None


def decode_lock(raw, last_modified, now=None):
    """A lock file with its age; ``active`` while younger than 150 s (backupstore lock.go)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        body = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        body = {}
    age = (now - last_modified).total_seconds()
    lock_type = body.get("Type") if isinstance(body, dict) else None
    return {
        "name": (body.get("Name") if isinstance(body, dict) else None) or "",
        "type": {1: "backup-or-restore", 2: "deletion"}.get(lock_type, "unknown"),
        "acquired": bool(body.get("Acquired")) if isinstance(body, dict) else False,
        "age_seconds": int(age),
        "active": age < LOCK_VALIDITY_SECONDS,
    }


def decode_system_backup_cfg(raw):
    cfg = _load_json(raw, "system-backup.cfg")
    decoded = dict(cfg)
    decoded["CreatedAtParsed"] = parse_go_time(cfg.get("CreatedAt"))
    return decoded


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()
