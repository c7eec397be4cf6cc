# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BackupVolume controller (ref §1.4): status from volume.cfg, one Backup CR per backup cfg.

Modelled on ``lm@v1.10.2:controller/backup_volume_controller.go`` ``reconcile``.
"""

from __future__ import annotations

import datetime

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import common
from . import settings as lh_settings
from .attachments import LAB_NODE
from .backup_target_controller import backup_volume_of
from .backupstore import BackupStoreError, parse_quantity
from .common import LOG
from .targets import TargetUnavailable, backupstore_for_target

# ref §1.4: DataStored = BlockCount x 2 MiB, whatever the block size (bs inspect.go).
DATA_STORED_BLOCK_SIZE = 2 * 1024 * 1024
LABEL_VOLUME_ACCESS_MODE = "longhorn.io/volume-access-mode"


def backup_block_size_of(cfg):
    """What the controller puts in Backup.spec.backupBlockSize for a pulled backup (v1.10+)."""
    if cfg is None or not cfg.get("CreatedTime"):
        return "-1"    # inspect fails for in-progress backups: the size stays invalid
    value = (cfg.get("Parameters") or {}).get("backup-block-size")
    try:
        size = parse_quantity(value) if value else 0
    except BackupStoreError:
        return "-1"
    if size == 0:
        return str(DATA_STORED_BLOCK_SIZE)
    if size not in (2 * 1024 * 1024, 16 * 1024 * 1024):
        return "-1"
    return str(size)


class BackupVolumeController(Controller):
    name = "longhorn-backup-volume"
    watches = (("longhorn.io", "backupvolumes"),)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._sync = common.SyncMemory()

    @property
    def legacy(self):
        return self.ctx.config.uses_backup_target_settings

    def _target_name(self, bv):
        return (bv.get("spec") or {}).get("backupTargetName") or (bv["metadata"].get("labels") or {}).get(common.LABEL_BACKUP_TARGET) \
            or "default"

    def reconcile(self, key):
        store = self.store
        name = key[3]
        bv = common.get(store, "backupvolumes", name)
        if bv is None:
            return None
        if (bv.get("status") or {}).get("ownerID") != LAB_NODE:
            bv = common.update_status(store, "backupvolumes", name, lambda s: s.update(ownerID=LAB_NODE))
            if bv is None:
                return None
        target = common.get(store, "backuptargets", self._target_name(bv))
        volume_name = backup_volume_of(bv)
        if bv["metadata"].get("deletionTimestamp"):
            return self._finalize(bv, target, volume_name)
        if target is None:
            LOG.warning("backup volume %s: backup target %s not found", name, self._target_name(bv))
            return 5.0
        if not self._sync.needed(bv):
            return None
        sync_time = common.rfc3339()
        try:
            backupstore = backupstore_for_target(self.ctx, target, probe=False)
            remote = set(backupstore.list_backup_names(volume_name))
        except Exception as exc:  # pylint: disable=broad-except
            LOG.warning("backup volume %s: failed to list backups: %s", name, getattr(exc, "message", exc))
            return None
        target_name = target["metadata"]["name"]
        cluster = common.list_objects(store, "backups", "%s=%s,%s=%s" % (
            common.LABEL_BACKUP_TARGET, target_name, common.LABEL_BACKUP_VOLUME, volume_name))
        ttl_minutes = lh_settings.get_int(store, "failed-backup-ttl", 1440)
        cluster_names = set()
        for backup in cluster:
            status = backup.get("status") or {}
            if (backup.get("spec") or {}).get("snapshotName") and status.get("state") != "Completed":
                # A local backup still running (or failed): not the store's business yet.
                if status.get("state") in ("Error", "Unknown") and ttl_minutes > 0:
                    synced = common.parse_time(status.get("lastSyncedAt"))
                    if synced is not None and common.now() > synced + datetime.timedelta(minutes=ttl_minutes):
                        self._delete(backup["metadata"]["name"])
                continue
            cluster_names.add(backup["metadata"]["name"])

        pulled = sorted(remote - cluster_names)
        for backup_name in pulled:
            self._pull_backup(bv, backupstore, target_name, volume_name, backup_name)
        vanished = sorted(cluster_names - remote)
        for backup_name in vanished:
            common.delete_cr_only(store, "backups", backup_name)

        volume_cfg = backupstore.read_volume_cfg(volume_name)
        if volume_cfg is None:
            LOG.warning("backup volume %s: volume.cfg missing in the backup store", name)
            return None
        modified = self._cfg_mtime(backupstore, volume_name)
        status = bv.get("status") or {}
        data_stored = str(int(volume_cfg.get("BlockCount") or 0) * DATA_STORED_BLOCK_SIZE)
        # metav1.Time keeps seconds only: also compare what a same-second backup would change.
        unchanged = modified and status.get("lastModificationTime") == modified \
            and status.get("lastBackupName") == (volume_cfg.get("LastBackupName") or "") and status.get("dataStored") == data_stored
        if not pulled and not vanished and unchanged:
            common.update_status(store, "backupvolumes", name, lambda s: s.update(lastSyncedAt=sync_time))
            self._sync.synced(bv)
            return None
        last_backup = volume_cfg.get("LastBackupName") or ""
        if status.get("lastBackupName") != last_backup and last_backup:
            self._request_backup_sync(bv, last_backup)

        def _status(live):
            live.update({
                "lastModificationTime": modified,
                "size": str(volume_cfg.get("Size") or 0),
                "labels": volume_cfg.get("Labels"),
                "createdAt": volume_cfg.get("CreatedTime") or "",
                "lastBackupName": last_backup,
                "lastBackupAt": volume_cfg.get("LastBackupAt") or "",
                "dataStored": data_stored,
                "messages": {},
                "backingImageName": volume_cfg.get("BackingImageName") or "",
                "backingImageChecksum": volume_cfg.get("BackingImageChecksum") or "",
                "storageClassName": volume_cfg.get("StorageClassName") or "",
                "lastSyncedAt": sync_time,
            })
        common.update_status(store, "backupvolumes", name, _status)
        self._sync.synced(bv)
        return None

    @staticmethod
    def _cfg_mtime(backupstore, volume_name):
        try:
            head = backupstore.s3.head_object(Bucket=backupstore.bucket, Key=backupstore.volume_cfg_key(volume_name))
        except Exception:  # pylint: disable=broad-except
            return None
        return common.rfc3339(head["LastModified"].astimezone(datetime.timezone.utc))

    def _pull_backup(self, bv, backupstore, target_name, volume_name, backup_name):
        """A Backup CR for a backup found in the store (ref §1.4); the backup controller fills its status."""
        try:
            cfg = backupstore.read_backup_cfg(volume_name, backup_name)
        except Exception:  # pylint: disable=broad-except
            cfg = None
        spec_labels = {}
        if cfg is not None and cfg.get("CreatedTime") and LABEL_VOLUME_ACCESS_MODE in (cfg.get("Labels") or {}):
            spec_labels[LABEL_VOLUME_ACCESS_MODE] = cfg["Labels"][LABEL_VOLUME_ACCESS_MODE]
        spec = {"labels": spec_labels}
        if self.ctx.config.longhorn_minor >= (1, 10):
            spec["backupBlockSize"] = backup_block_size_of(cfg)
        backup = {
            "metadata": {"name": backup_name, "namespace": bv["metadata"]["namespace"],
                         "labels": {common.LABEL_BACKUP_TARGET: target_name, common.LABEL_BACKUP_VOLUME: volume_name},
                         "ownerReferences": [common.owner_reference(bv)]},
            "spec": spec,
        }
        try:
            self.store.create(common.rtype(self.store, "backups"), backup, user=common.MANAGER)
        except errors.AlreadyExists:
            pass
        except errors.ApiError as exc:
            LOG.warning("backup volume %s: cannot create Backup %s: %s", bv["metadata"]["name"], backup_name, exc.message)

    def _request_backup_sync(self, bv, backup_name):
        owner = common.owner_reference(bv)

        def _own(obj):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == owner["uid"] for ref in refs):
                obj["metadata"]["ownerReferences"] = refs + [owner]
        common.update_object(self.store, "backups", backup_name, _own)
        common.request_sync(self.store, "backups", backup_name)

    def _delete(self, backup_name):
        try:
            self.store.delete(common.rtype(self.store, "backups"), LONGHORN_NAMESPACE,
                              backup_name, user=common.MANAGER)
        except errors.NotFound:
            pass

    def _finalize(self, bv, target, volume_name):
        """ref §1.3 last bullet: deleting a BackupVolume deletes the volume's data unless CR-only or unavailable."""
        name = bv["metadata"]["name"]
        if not common.has_cr_only_label(bv) and common.target_available(target):
            try:
                backupstore = backupstore_for_target(self.ctx, target, probe=False)
            except TargetUnavailable as exc:
                LOG.warning("backup volume %s: failed to init backup target clients: %s", name, exc.message)
                return None
            try:
                backupstore.delete_volume(volume_name)
            except Exception as exc:  # pylint: disable=broad-except
                LOG.warning("backup volume %s: failed to delete remote backup volume: %s", name, exc)
                return 2.0
        common.remove_finalizer(self.store, "backupvolumes", name)
        return None


CONTROLLERS = [BackupVolumeController]
