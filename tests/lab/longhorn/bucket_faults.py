# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bucket damage for fault-injection tests: one block a backup references, corrupted or deleted.

The restore path verifies every block against its checksum (ref §3.3 Compression, "Every
restored block is checked"), and the bucket check looks for missing blocks; these helpers
give both something to find.
"""

from __future__ import annotations

from .targets import DEFAULT_BACKUP_TARGET, backupstore_for_target, get_backup_target


class BucketFaultError(Exception):
    """The backup or block to damage does not exist."""


def _backupstore(ctx_or_store, target_name=DEFAULT_BACKUP_TARGET):
    """A BackupStore as is, or the one behind a lab context's BackupTarget."""
    if hasattr(ctx_or_store, "read_backup_cfg"):
        return ctx_or_store
    target = get_backup_target(ctx_or_store.store, target_name)
    if target is None:
        raise BucketFaultError("backup target %s not found" % target_name)
    return backupstore_for_target(ctx_or_store, target, probe=False)


def _block_key(backupstore, volume, backup):
    if backup is None:
        volume_cfg = backupstore.read_volume_cfg(volume)
        if volume_cfg is None or not volume_cfg.get("LastBackupName"):
            raise BucketFaultError("volume %s has no backup in the store" % volume)
        backup = volume_cfg["LastBackupName"]
    cfg = backupstore.read_backup_cfg(volume, backup)
    if cfg is None:
        raise BucketFaultError("backup %s of volume %s not found in the store" % (backup, volume))
    blocks = sorted(cfg.get("Blocks") or [], key=lambda block: int(block["Offset"]))
    if not blocks:
        raise BucketFaultError("backup %s of volume %s has no blocks" % (backup, volume))
    return backupstore.block_key(volume, blocks[0]["BlockChecksum"])


def corrupt_block(ctx_or_store, volume, backup=None, target_name=DEFAULT_BACKUP_TARGET):
    """Flip bytes in the first block of ``backup`` (default: the volume's last backup); returns its key."""
    backupstore = _backupstore(ctx_or_store, target_name)
    key = _block_key(backupstore, volume, backup)
    payload = backupstore.get(key)
    if payload is None:
        raise BucketFaultError("block %s is already missing" % key)
    damaged = bytearray(payload)
    # Past any compression header, so the data (not only the frame) is wrong; the length stays.
    for index in range(len(damaged) // 2, min(len(damaged), len(damaged) // 2 + 16)):
        damaged[index] ^= 0xFF
    backupstore.put(key, bytes(damaged))
    return key


def delete_block(ctx_or_store, volume, backup=None, target_name=DEFAULT_BACKUP_TARGET):
    """Remove the first block of ``backup`` (default: the volume's last backup); returns its key."""
    backupstore = _backupstore(ctx_or_store, target_name)
    key = _block_key(backupstore, volume, backup)
    backupstore.delete(key)
    return key
