# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backup controller (ref §1.3): local backups of a snapshot, and status of backups found in the store.

Modelled on ``lm@v1.10.2:controller/backup_controller.go``. The engine side (the replica
that streams blocks to the store, ``backupstore`` CreateDeltaBlockBackup) is ``BackupJob``,
run in a thread pool; the controller polls it like Longhorn's BackupMonitor.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import attachments, common, snapshots, volumedata
from . import settings as lh_settings
from .attachments import LAB_NODE
from .backup_target_controller import find_backup_volume
from .backupstore import encode_backup_url
from .common import LOG
from .targets import TargetUnavailable, backupstore_for_target, parse_backup_target_url

MB = 1024 * 1024
TICKET_TYPE = attachments.BACKUP_CONTROLLER
FINAL_STATES = ("Completed", "Error", "Unknown", "Deleting")
ACTIVE_STATES = ("", "Pending", "InProgress")
# lm@v1.10.2:types/types.go VolumeRecurringJobInfoLabel / RecurringJobLabel.
VOLUME_RECURRING_JOB_INFO_LABEL = "VolumeRecurringJobInfo"
RECURRING_JOB_LABEL = "RecurringJob"
JOB_LABEL_PREFIX = "recurring-job.longhorn.io/"
GROUP_LABEL_PREFIX = "recurring-job-group.longhorn.io/"
POLL = 0.1


def ticket_id(backup_name):
    """longhorn.GetAttachmentTicketID(AttacherTypeBackupController, name)."""
    return "%s-%s" % (TICKET_TYPE, backup_name)


def add_any_ticket(store, volume_name, ticket, ticket_type, node_id=LAB_NODE):
    """createOrUpdateAttachmentTicket with disableFrontend "any", as the backup and snapshot controllers ask."""
    attachments.ensure_volume_attachment(store, volume_name)

    def _add(obj):
        tickets = obj.setdefault("spec", {}).get("attachmentTickets") or {}
        obj["spec"]["attachmentTickets"] = tickets
        if ticket not in tickets:
            tickets[ticket] = {"id": ticket, "type": ticket_type, "nodeID": node_id, "generation": 0,
                               "parameters": {"disableFrontend": "any"}}
    common.update_object(store, "volumeattachments", volume_name, _add)


def remove_ticket(store, volume_name, ticket):
    va = common.get(store, "volumeattachments", volume_name)
    if va is None or ticket not in ((va.get("spec") or {}).get("attachmentTickets") or {}):
        return
    attachments.remove_ticket(store, volume_name, ticket)


def _job_spec(job_name, spec):
    """RecurringJobSpec as Go marshals it: declaration order, omitempty groups/labels/parameters, sorted maps."""
    out = {"name": spec.get("name") or job_name}
    if spec.get("groups"):
        out["groups"] = list(spec["groups"])
    out.update(task=spec.get("task", ""), cron=spec.get("cron", ""), retain=int(spec.get("retain") or 0),
               concurrency=int(spec.get("concurrency") or 0))
    for key in ("labels", "parameters"):
        if spec.get(key):
            out[key] = {k: spec[key][k] for k in sorted(spec[key])}
    return out


def volume_recurring_job_info(store, volume):
    """BackupMonitor.getVolumeRecurringJobInfos: JSON of the volume's jobs ("{}" when none)."""
    labels = (volume.get("metadata") or {}).get("labels") or {}
    selected_jobs = {key[len(JOB_LABEL_PREFIX):] for key, value in labels.items() if key.startswith(JOB_LABEL_PREFIX) and value == "enabled"}
    selected_groups = {key[len(GROUP_LABEL_PREFIX):] for key, value in labels.items()
                       if key.startswith(GROUP_LABEL_PREFIX) and value == "enabled"}
    infos = {}
    for job in common.list_objects(store, "recurringjobs"):
        job_name = job["metadata"]["name"]
        spec = job.get("spec") or {}
        groups = sorted(selected_groups & set(spec.get("groups") or []))
        if not groups and job_name not in selected_jobs:
            continue
        info = {"jobSpec": _job_spec(job_name, spec)}
        if groups:
            info["fromGroup"] = groups      # json:"fromGroup,omitempty"
        info["fromJob"] = job_name in selected_jobs
        infos[job_name] = info
    return json.dumps({name: infos[name] for name in sorted(infos)}, separators=(",", ":"))


class BackupJob:
    """One volume backup as the engine runs it: stub cfg and lock, blocks, then the final cfg (ref §3.3)."""

    def __init__(self, ctx, backupstore, *, volume_name, backup_name, snapshot_name, compression, block_size, backup_mode,
                 volume_size, labels, storage_class_name, data_engine, target_url, legacy_parameters):
        self.ctx = ctx
        self.backupstore = backupstore
        self.volume_name = volume_name
        self.backup_name = backup_name
        self.snapshot_name = snapshot_name
        self.compression = compression
        self.block_size = block_size
        self.backup_mode = backup_mode
        self.volume_size = volume_size
        self.labels = labels
        self.storage_class_name = storage_class_name
        self.data_engine = data_engine
        self.target_url = target_url
        self.legacy_parameters = legacy_parameters
        self._lock = threading.Lock()
        self._status = {"state": "InProgress", "progress": 0, "error": "", "url": "",
                        "snapshotName": snapshot_name, "replicaAddress": "tcp://10.42.0.%d:10000" % (zlib.crc32(volume_name.encode()) % 200 + 20)}
        self.cancelled = threading.Event()

    def status(self):
        with self._lock:
            return dict(self._status)

    def _set(self, **fields):
        with self._lock:
            self._status.update(fields)

    def run(self):
        writer = None
        try:
            started = common.rfc3339()   # ref §3.3: SnapshotCreatedAt is when the engine starts the backup
            image = snapshots.read(self.ctx, self.volume_name, self.snapshot_name)
            writer = self.backupstore.begin_backup(
                self.volume_name, self.backup_name, compression=self.compression, block_size=self.block_size,
                backup_mode=self.backup_mode, volume_size=self.volume_size, labels=self.labels, created_at=started,
                storage_class_name=self.storage_class_name, data_engine=self.data_engine)
            if len(image) % self.block_size:
                image = bytes(image) + bytes(self.block_size - len(image) % self.block_size)
            blocks = dict(volumedata.split_blocks(image, self.block_size))
            zero = bytes(self.block_size)
            # The snapshot image stops where the data ends; the volume goes on with zeros up to its size,
            # so blocks the last backup had there must be backed up as zeros (they were overwritten).
            for offset in writer.inherited_offsets:
                if offset not in blocks and offset + self.block_size <= max(len(image), self.volume_size):
                    blocks[offset] = zero
            items = sorted(blocks.items())
            speed = float(self.ctx.config.backup_speed_mbps or 0)
            fail = self.volume_name in self.ctx.faults.backup_failures
            for index, (offset, data) in enumerate(items):
                if self.cancelled.is_set():
                    raise RuntimeError("backup %s was cancelled" % self.backup_name)
                if fail and index >= len(items) // 2:
                    # ref §3.3: a crashed backup leaves the stub cfg (empty CreatedTime) behind.
                    raise RuntimeError("failed to upload block %d of backup %s: connection reset by peer (lab fault injection)"
                                       % (offset // self.block_size, self.backup_name))
                sent = writer.upload_block(offset, data)
                if speed > 0 and sent:
                    time.sleep(len(data) / (speed * MB))
                self._set(progress=int((index + 1) * 100 / (len(items) + 1)))
            if fail:
                raise RuntimeError("failed to complete backup %s: connection reset by peer (lab fault injection)" % self.backup_name)
            parameters = {"backup-mode": self.backup_mode} if self.legacy_parameters else None
            writer.finish(snapshot_name=self.snapshot_name, snapshot_created_at=started, created_at=common.rfc3339(),
                          volume_size=self.volume_size, labels=self.labels, backup_mode=self.backup_mode,
                          storage_class_name=self.storage_class_name, data_engine=self.data_engine, parameters=parameters)
            self._set(state="Completed", progress=100,
                      url=encode_backup_url(self.backup_name, self.volume_name, self.target_url))
        except Exception as exc:  # pylint: disable=broad-except
            if writer is not None:
                writer.abort()
            message = getattr(exc, "message", None) or str(exc)
            LOG.warning("backup %s of volume %s failed: %s", self.backup_name, self.volume_name, message)
            self._set(state="Error", error=message)


class BackupController(Controller):
    name = "longhorn-backup"
    watches = (("longhorn.io", "backups"),)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._jobs = {}             # backup uid -> BackupJob
        self._deletions = {}        # backup uid -> {"state": "Deleting"|"Error"|"Done", "error": str}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lab-backup")
        self._sync = common.SyncMemory()

    # --- helpers ---------------------------------------------------------------------------------

    def _target_of(self, backup):
        labels = backup["metadata"].get("labels") or {}
        name = labels.get(common.LABEL_BACKUP_TARGET)
        if name is None:
            snapshot = common.get(self.store, "snapshots", (backup.get("spec") or {}).get("snapshotName"))
            volume = common.get(self.store, "volumes", ((snapshot or {}).get("spec") or {}).get("volume"))
            name = ((volume or {}).get("spec") or {}).get("backupTargetName")
        return name, common.get(self.store, "backuptargets", name)

    def _set_status(self, name, fields):
        def _apply(status):
            status.update(fields)
        return common.update_status(self.store, "backups", name, _apply)

    # --- reconcile -------------------------------------------------------------------------------

    def reconcile(self, key):
        store = self.store
        name = key[3]
        backup = common.get(store, "backups", name)
        if backup is None:
            return None
        status = backup.get("status") or {}
        if status.get("ownerID") != LAB_NODE:
            backup = self._set_status(name, {"ownerID": LAB_NODE})
            if backup is None:
                return None
            status = backup.get("status") or {}
        target_name, target = self._target_of(backup)
        if target is None and not backup["metadata"].get("deletionTimestamp"):
            LOG.warning("backup %s: backup target %s not found", name, target_name)
            return 5.0
        volume_name = (backup["metadata"].get("labels") or {}).get(common.LABEL_BACKUP_VOLUME)
        if not volume_name:
            return None
        if backup["metadata"].get("deletionTimestamp"):
            return self._finalize(backup, target_name, target, volume_name)

        spec = backup.get("spec") or {}
        start_state = status.get("state", "")
        if not status.get("lastSyncedAt") and spec.get("snapshotName") and status.get("state", "") not in FINAL_STATES:
            delay = self._run_local_backup(backup, volume_name, target)
            if delay is not None:
                return delay
            backup = common.get(store, "backups", name)
            if backup is None:
                return None
            status = backup.get("status") or {}
            if status.get("state") != "Completed":
                self._release_ticket(backup, volume_name)
                return None
        if status.get("lastSyncedAt") and not self._sync.needed(backup):
            self._release_ticket(backup, volume_name)
            return None
        return self._sync_from_store(backup, target_name, target, volume_name, start_state)

    def _release_ticket(self, backup, volume_name):
        status = backup.get("status") or {}
        if status.get("state") in FINAL_STATES and (status.get("lastSyncedAt") or not (backup.get("spec") or {}).get("snapshotName")):
            remove_ticket(self.store, volume_name, ticket_id(backup["metadata"]["name"]))

    def _run_local_backup(self, backup, volume_name, target):
        """Returns a requeue delay while the backup runs; None once it reached a final state."""
        store = self.store
        name = backup["metadata"]["name"]
        uid = backup["metadata"]["uid"]
        spec = backup.get("spec") or {}
        status = backup.get("status") or {}
        volume = common.get(store, "volumes", volume_name)
        if volume is None:
            self._set_status(name, {"state": "Error", "error": "cannot find the corresponding volume: %s" % common_not_found("volume", volume_name),
                                    "lastSyncedAt": common.rfc3339()})
            return None
        add_any_ticket(store, volume_name, ticket_id(name), TICKET_TYPE, (volume.get("status") or {}).get("ownerID") or LAB_NODE)
        updates = {}
        if not status.get("snapshotCreatedAt") or not status.get("volumeSize"):
            updates["volumeSize"] = str(volume["spec"].get("size") or "0")
            snapshot = common.get(store, "snapshots", spec.get("snapshotName"))
            if snapshot is not None and (snapshot.get("status") or {}).get("creationTime"):
                updates["snapshotCreatedAt"] = snapshot["status"]["creationTime"]
        if status.get("messages") is None:
            updates["messages"] = {}
        if updates:
            self._set_status(name, updates)

        with self._guard:
            job = self._jobs.get(uid)
        if job is None:
            job = self._start_job(backup, volume, target)
            if job is None:
                return POLL * 2
        job_status = job.status()
        fields = {"progress": job_status["progress"], "url": job_status["url"], "error": job_status["error"],
                  "snapshotName": job_status["snapshotName"], "replicaAddress": job_status["replicaAddress"],
                  "state": job_status["state"]}
        if job_status["state"] == "Error":
            fields["lastSyncedAt"] = common.rfc3339()
        self._set_status(name, fields)
        if job_status["state"] in ACTIVE_STATES:
            return POLL
        with self._guard:
            self._jobs.pop(uid, None)
        return None

    def _pending(self, name, message):
        backup = common.get(self.store, "backups", name)
        messages = dict(((backup or {}).get("status") or {}).get("messages") or {})
        messages["info"] = message
        self._set_status(name, {"state": "Pending", "messages": messages})

    def _start_job(self, backup, volume, target):
        """checkMonitor: attachment, engine, snapshot and deletions must allow the backup first."""
        store = self.store
        name = backup["metadata"]["name"]
        volume_name = volume["metadata"]["name"]
        spec = backup.get("spec") or {}
        if not attachments.ticket_satisfied(store, volume_name, ticket_id(name)):
            LOG.debug("backup %s: waiting for attachment %s to be attached before enabling backup monitor", name, ticket_id(name))
            return None
        snapshot_name = spec.get("snapshotName")
        snapshot = common.get(store, "snapshots", snapshot_name)
        if snapshot is None:
            self._pending(name, "Failed to get the Snapshot %s" % snapshot_name)
            return None
        if not (snapshot.get("status") or {}).get("readyToUse"):
            self._pending(name, "Waiting for the snapshot %s to be ready" % snapshot_name)
            return None
        target_name = target["metadata"]["name"]
        selector = "%s=%s,%s=%s" % (common.LABEL_BACKUP_TARGET, target_name, common.LABEL_BACKUP_VOLUME, volume_name)
        for other in common.list_objects(store, "backups", selector):
            if (other.get("status") or {}).get("state") == "Deleting":
                self._pending(name, "Waiting for the backup %s deletion to complete" % other["metadata"]["name"])
                return None
        try:
            backupstore = backupstore_for_target(self.ctx, target, probe=False)
        except TargetUnavailable as exc:
            self._set_status(name, {"state": "Error", "error": exc.message, "lastSyncedAt": common.rfc3339()})
            return None
        vspec = volume.get("spec") or {}
        compression = vspec.get("backupCompressionMethod") or lh_settings.get_setting(store, lh_settings.BACKUP_COMPRESSION_METHOD, "lz4")
        block_size = int(str(spec.get("backupBlockSize") or vspec.get("backupBlockSize") or 0) or 0)
        if block_size not in (2 * MB, 16 * MB):
            block_size = 2 * MB
        labels = dict(spec.get("labels") or {})
        # The backup monitor records the volume's recurring jobs in the labels (engineapi/backup_monitor.go).
        labels[VOLUME_RECURRING_JOB_INFO_LABEL] = volume_recurring_job_info(store, volume)
        parsed = parse_backup_target_url(target["spec"]["backupTargetURL"], default_region=self.ctx.config.region)
        job = BackupJob(self.ctx, backupstore, volume_name=volume_name, backup_name=name, snapshot_name=snapshot_name,
                        compression=compression, block_size=block_size, backup_mode=spec.get("backupMode") or "incremental",
                        volume_size=int(str(vspec.get("size") or "0")), labels=labels,
                        storage_class_name=self._storage_class_of(volume), data_engine=vspec.get("dataEngine") or "v1",
                        target_url=parsed.normalized, legacy_parameters=self.ctx.config.longhorn_minor < (1, 10))
        with self._guard:
            self._jobs[backup["metadata"]["uid"]] = job
        self._set_status(name, {"state": "InProgress", "progress": 0, "messages": {}})
        self._pool.submit(job.run)
        return job

    def _storage_class_of(self, volume):
        """checkMonitor: the StorageClass of the PVC bound to the volume, when the PVC is live."""
        kstatus = (volume.get("status") or {}).get("kubernetesStatus") or {}
        if not kstatus.get("pvcName") or kstatus.get("lastPVCRefAt"):
            return ""
        pvc = self.store.try_get("persistentvolumeclaims", kstatus.get("namespace"), kstatus["pvcName"])
        if pvc is None:
            return ""
        return (pvc.get("spec") or {}).get("storageClassName") or \
            (pvc["metadata"].get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class", "")

    def _sync_from_store(self, backup, target_name, target, volume_name, previous_state):
        """Once created, the store is the source of truth: status from ``backup inspect`` (ref §1.3, §1.4)."""
        name = backup["metadata"]["name"]
        try:
            backupstore = backupstore_for_target(self.ctx, target, probe=False)
            cfg = backupstore.read_backup_cfg(volume_name, name)
            volume_cfg = backupstore.read_volume_cfg(volume_name) if cfg is not None else None
        except Exception as exc:  # pylint: disable=broad-except
            LOG.warning("backup %s: error inspecting backup config: %s", name, getattr(exc, "message", exc))
            return None
        if cfg is None or volume_cfg is None or not cfg.get("CreatedTime"):
            # Missing, or still in progress in the store: inspect fails and the status stays as it is.
            return None
        labels = dict(cfg.get("Labels") or {})
        labels.pop(VOLUME_RECURRING_JOB_INFO_LABEL, None)
        sync_time = common.rfc3339()
        fields = {
            "backupTargetName": target_name,
            "state": "Completed",
            "url": encode_backup_url(name, volume_name, backupstore_url(self.ctx, target)),
            "snapshotName": cfg.get("SnapshotName") or "",
            "snapshotCreatedAt": cfg.get("SnapshotCreatedAt") or "",
            "backupCreatedAt": cfg.get("CreatedTime") or "",
            "size": str(cfg.get("Size") or 0),
            "labels": labels,
            "messages": None,
            "volumeName": volume_cfg.get("Name") or volume_name,
            "volumeSize": str(volume_cfg.get("Size") or 0),
            "volumeCreated": volume_cfg.get("CreatedTime") or "",
            "volumeBackingImageName": volume_cfg.get("BackingImageName") or "",
            "compressionMethod": cfg.get("CompressionMethod") or "",
            "lastSyncedAt": sync_time,
            "newlyUploadDataSize": str(cfg.get("NewlyUploadedDataSize") or 0),
            "reUploadedDataSize": str(cfg.get("ReUploadedDataSize") or 0),
        }
        synced = self._set_status(name, fields)
        if synced is None:
            return None
        self._sync.synced(backup)
        backup = synced
        self._release_ticket(backup, volume_name)
        if previous_state != "Completed":
            self._after_completion(backup, target_name, volume_name)
        return None

    def _after_completion(self, backup, target_name, volume_name):
        """syncBackupVolume: ask the BackupVolume (or the target, if none yet) to sync; record the volume's last backup."""
        store = self.store
        bv = find_backup_volume(store, target_name, volume_name)
        if bv is not None:
            common.request_sync(store, "backupvolumes", bv["metadata"]["name"])
        else:
            common.request_sync(store, "backuptargets", target_name)
        if not (backup.get("spec") or {}).get("snapshotName"):
            return
        volume = common.get(store, "volumes", volume_name)
        if volume is not None and ((volume.get("spec") or {}).get("backupTargetName") or "default") == target_name:
            status = backup.get("status") or {}
            common.update_status(store, "volumes", volume_name, lambda s: s.update(
                lastBackup=backup["metadata"]["name"], lastBackupAt=status.get("snapshotCreatedAt", "")))
        cleanup = lh_settings.get_bool(store, "auto-cleanup-snapshot-after-on-demand-backup-completed")
        if cleanup and RECURRING_JOB_LABEL not in ((backup.get("status") or {}).get("labels") or {}):
            try:
                store.delete(common.rtype(store, "snapshots"), LONGHORN_NAMESPACE, backup["spec"]["snapshotName"], user=common.MANAGER)
            except errors.ApiError:
                pass

    # --- deletion (ref §1.3 last bullet) -----------------------------------------------------------

    def _finalize(self, backup, target_name, target, volume_name):
        store = self.store
        name = backup["metadata"]["name"]
        uid = backup["metadata"]["uid"]
        remove_ticket(store, volume_name, ticket_id(name))
        with self._guard:
            job = self._jobs.pop(uid, None)
        if job is not None:
            job.cancelled.set()
        bv = find_backup_volume(store, target_name, volume_name)
        needs_cleanup = not common.has_cr_only_label(backup) and common.target_available(target)
        if needs_cleanup and bv is not None and not bv["metadata"].get("deletionTimestamp"):
            delay = self._delete_remote(backup, target, volume_name)
            if delay is not None:
                return delay
        if bv is not None and not bv["metadata"].get("deletionTimestamp") and (bv.get("status") or {}).get("lastBackupName") == name:
            common.request_sync(store, "backupvolumes", bv["metadata"]["name"])
        with self._guard:
            self._deletions.pop(uid, None)
        common.remove_finalizer(store, "backups", name)
        return None

    def _restoring_from(self, volume_name):
        for volume in common.list_objects(self.store, "volumes"):
            status = volume.get("status") or {}
            from_backup = (volume.get("spec") or {}).get("fromBackup") or ""
            if status.get("restoreRequired") and ("volume=%s" % volume_name) in from_backup:
                return volume["metadata"]["name"]
        return None

    def _delete_remote(self, backup, target, volume_name):
        """handleBackupDeletionInBackupStore: delete asynchronously, wait while the state is Deleting."""
        name = backup["metadata"]["name"]
        uid = backup["metadata"]["uid"]
        with self._guard:
            deletion = self._deletions.get(uid)
        if deletion is None:
            restoring = self._restoring_from(volume_name)
            if restoring is not None:
                LOG.warning("backup %s cannot be deleted due to the ongoing volume %s restoration", name, restoring)
                return 1.0
            try:
                backupstore = backupstore_for_target(self.ctx, target, probe=False)
            except TargetUnavailable as exc:
                LOG.warning("backup %s: failed to init backup target clients: %s", name, exc.message)
                return None
            with self._guard:
                self._deletions[uid] = {"state": "Deleting", "error": ""}
            self._set_status(name, {"state": "Deleting", "messages": {}})
            self._pool.submit(self._delete_worker, uid, backupstore, volume_name, name, target)
            return POLL
        if deletion["state"] == "Deleting":
            return POLL
        if deletion["state"] == "Error":
            url = backupstore_url(self.ctx, target)
            self._set_status(name, {"state": "Error", "messages": {
                "error": "failed to delete backup %s: %s" % (url, deletion["error"])}})
            with self._guard:
                self._deletions.pop(uid, None)
            return 5.0
        return None

    def _delete_worker(self, uid, backupstore, volume_name, backup_name, target):
        try:
            backupstore.delete_backup(volume_name, backup_name)
            result = {"state": "Done", "error": ""}
        except Exception as exc:  # pylint: disable=broad-except
            LOG.warning("deleting backup %s of volume %s from %s failed: %s", backup_name, volume_name,
                        target["metadata"]["name"], exc)
            result = {"state": "Error", "error": str(exc)}
        with self._guard:
            if uid in self._deletions:
                self._deletions[uid] = result


def backupstore_url(ctx, target):
    """The driver URL of a target (``s3://bucket@region/path``), used in Backup.status.url (ref §4)."""
    return parse_backup_target_url(target["spec"]["backupTargetURL"], default_region=ctx.config.region).normalized


def common_not_found(singular, name):
    return '%s.longhorn.io "%s" not found' % (singular, name)


class RecurringJobController(Controller):
    """Recurring jobs are stored, not run, in the lab: the controller only takes ownership (ref §1.9)."""

    name = "longhorn-recurring-job"
    watches = (("longhorn.io", "recurringjobs"),)

    def reconcile(self, key):
        job = common.get(self.store, "recurringjobs", key[3])
        if job is None:
            return None
        status = job.get("status") or {}
        if status.get("ownerID") != LAB_NODE or "executionCount" not in status:
            common.update_status(self.store, "recurringjobs", key[3],
                                 lambda s: s.update(ownerID=LAB_NODE, executionCount=int(s.get("executionCount") or 0)))
        return None


CONTROLLERS = [BackupController, RecurringJobController]
