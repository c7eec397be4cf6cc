# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deleting Backup and BackupVolume CRs: remote data goes too, unless CR-only or the target is down (ref §1.3)."""

from __future__ import annotations

import base64

from tests.lab.longhorn.backup_target_controller import backup_volume_cr_name
from tests.unit.lab.test_longhorn_backup_harness import (MIB, NS, SECRET_NAME, env, env_factory, rfc3339,  # noqa: F401 pylint: disable=unused-import
                                                        wait_for)

CR_ONLY = "longhorn.io/delete-custom-resource-only"


def backed_up(env, volume, backups, files=None):
    env.create_volume(volume)
    for index, name in enumerate(backups):
        env.write_files(volume, files or {"f%d.bin" % index: bytes([index + 1]) * 3 * MIB})
        env.snapshot(volume, "snap-" + name)
        env.backup("snap-" + name, name)
    bv_name = backup_volume_cr_name(volume, "default")
    wait_for(lambda: (env.get("backupvolumes", bv_name) or {}).get("status", {}).get("lastBackupName") == backups[-1],
             what="BackupVolume %s synced" % bv_name)
    return bv_name


def delete(env, plural, name, cr_only=False):
    """Delete a CR and wait until that object is gone (a sync may pull a CR-only deleted one back)."""
    if cr_only:
        def _label(obj):
            obj["metadata"].setdefault("labels", {})[CR_ONLY] = "true"
        env.modify(plural, name, _label)
    uid = env.get(plural, name)["metadata"]["uid"]
    env.store.delete(env.rtype(plural), NS, name)
    wait_for(lambda: (env.get(plural, name) or {"metadata": {}})["metadata"].get("uid") != uid, what="%s %s gone" % (plural, name))


def test_deleting_a_backup_deletes_it_in_the_store(env):
    env.configure_target()
    bv_name = backed_up(env, "vol-del", ["backup-d1", "backup-d2"])
    store = env.backupstore()
    blocks_before = set(store.list_block_checksums("vol-del"))
    delete(env, "backups", "backup-d2")
    assert store.read_backup_cfg("vol-del", "backup-d2") is None
    assert store.read_backup_cfg("vol-del", "backup-d1") is not None
    blocks_after = set(store.list_block_checksums("vol-del"))
    assert blocks_after < blocks_before     # blocks only the deleted backup used are collected
    store.read_image("vol-del", "backup-d1")
    # The BackupVolume follows the store: its last backup is now backup-d1.
    wait_for(lambda: env.get("backupvolumes", bv_name)["status"]["lastBackupName"] == "backup-d1", what="BackupVolume re-synced")


def test_cr_only_label_keeps_the_backup_in_the_store(env):
    env.configure_target()
    backed_up(env, "vol-keep", ["backup-k1"])
    delete(env, "backups", "backup-k1", cr_only=True)
    assert env.backupstore().read_backup_cfg("vol-keep", "backup-k1") is not None


def test_deleting_a_backup_volume_deletes_the_volume_directory(env):
    env.configure_target()
    bv_name = backed_up(env, "vol-bvdel", ["backup-v1"])
    delete(env, "backupvolumes", bv_name)
    store = env.backupstore()
    assert "vol-bvdel" not in store.list_volume_names()
    assert not store.list_objects(store.volume_path("vol-bvdel"))
    # Its Backup CRs are owned by it and go as well.
    wait_for(lambda: env.get("backups", "backup-v1") is None, what="Backup CR collected")


def test_cr_only_backup_volume_deletion_keeps_the_data(env):
    env.configure_target()
    bv_name = backed_up(env, "vol-bvkeep", ["backup-w1"])
    delete(env, "backupvolumes", bv_name, cr_only=True)
    store = env.backupstore()
    assert store.read_backup_cfg("vol-bvkeep", "backup-w1") is not None
    wait_for(lambda: env.get("backups", "backup-w1") is None, what="Backup CR collected")
    assert store.read_backup_cfg("vol-bvkeep", "backup-w1") is not None
    # The next sync brings both back from the store.
    started = rfc3339()
    env.request_sync()
    env.wait_synced(after=started)
    env.wait_backup("backup-w1", ("Completed",))


def test_unavailable_target_keeps_the_data(env):
    env.configure_target()
    backed_up(env, "vol-down", ["backup-x1"])

    def _break(obj):
        obj["data"]["AWS_SECRET_ACCESS_KEY"] = base64.b64encode(b"wrong-secret-key").decode()
    env.store.modify("secrets", NS, SECRET_NAME, _break)
    env.request_sync()
    env.wait_target(lambda t: t["status"]["available"] is False, what="target unavailable")
    delete(env, "backups", "backup-x1")
    assert env.backupstore().read_backup_cfg("vol-down", "backup-x1") is not None


def test_finalizer_is_added_and_removed(env):
    env.configure_target()
    backed_up(env, "vol-fin", ["backup-f1"])
    backup = env.get("backups", "backup-f1")
    assert backup["metadata"]["finalizers"] == ["longhorn.io"]
    deleting = env.store.delete(env.rtype("backups"), NS, "backup-f1")
    assert deleting["metadata"]["deletionTimestamp"]
    wait_for(lambda: env.get("backups", "backup-f1") is None, what="finalizer removed")
