# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BackupTarget controller (ref §1.1): availability, the poll timer and the store sync.

Modelled on ``lm@v1.10.2:controller/backup_target_controller.go`` ``reconcile``.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
import time
import weakref

from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import common
from .attachments import LAB_NODE
from .common import LOG
from .targets import DEFAULT_BACKUP_TARGET, TargetClientError, TargetUnavailable, backupstore_for_target

EMPTY_URL_MESSAGE = "backup target URL is empty"
CONDITION_UNAVAILABLE = "Unavailable"


def backup_volume_cr_name(volume_name, target_name, legacy=False):
    """ref §1.4: ``<vol>-<8 hex of sha256("<vol>-<target>")>`` from v1.8; the volume name up to v1.7."""
    if legacy:
        return volume_name
    digest = hashlib.sha256(("%s-%s" % (volume_name, target_name)).strip().encode("utf-8")).hexdigest()
    return "%s-%s" % (volume_name, digest[:8])


def backup_volume_of(bv):
    """The original volume name of a BackupVolume CR (spec.volumeName from v1.8, label or name before)."""
    return (bv.get("spec") or {}).get("volumeName") or (bv["metadata"].get("labels") or {}).get(common.LABEL_BACKUP_VOLUME) \
        or bv["metadata"]["name"]


def find_backup_volume(store, target_name, volume_name):
    items = common.list_objects(store, "backupvolumes", "%s=%s,%s=%s" % (
        common.LABEL_BACKUP_TARGET, target_name, common.LABEL_BACKUP_VOLUME, volume_name))
    return items[0] if items else None


class _TimerWheel:
    """One daemon thread for every BackupStoreTimer of the process (labs come and go in tests)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap = []
        self._seq = 0
        self._thread = None

    def schedule(self, timer, delay):
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + delay, self._seq, timer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lh-backupstore-timers", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self):
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._cond.wait(timeout if timeout is None else max(timeout, 0.0))
                _due, _seq, timer = heapq.heappop(self._heap)
            timer.fire()


_WHEEL = _TimerWheel()


class _PollTimer:
    """BackupStoreTimer: writes spec.syncRequestedAt=now every pollInterval until stopped."""

    def __init__(self, controller, target_name, interval):
        self.controller = weakref.ref(controller)
        self.target_name = target_name
        self.interval = interval
        self.stopped = False
        _WHEEL.schedule(self, interval)

    def fire(self):
        controller = self.controller()
        if self.stopped or controller is None or not controller.alive():
            return
        try:
            common.request_sync(controller.store, "backuptargets", self.target_name)
        except Exception:  # pylint: disable=broad-except
            LOG.warning("backup store timer of %s failed to request a sync", self.target_name)
        _WHEEL.schedule(self, self.interval)

    def stop(self):
        self.stopped = True


class BackupTargetController(Controller):
    name = "longhorn-backup-target"
    watches = (("longhorn.io", "backuptargets"),)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._timers = {}
        self._timers_lock = threading.Lock()
        self._workers = weakref.WeakSet()
        self._sync = common.SyncMemory()

    @property
    def legacy(self):
        return self.ctx.config.uses_backup_target_settings

    def alive(self):
        """True while a worker thread of the controller manager still runs this controller."""
        return any(thread.is_alive() for thread in list(self._workers))

    def _stop_timer(self, name):
        with self._timers_lock:
            timer = self._timers.pop(name, None)
        if timer is not None:
            timer.stop()

    def _ensure_timer(self, target):
        name = target["metadata"]["name"]
        spec = target.get("spec") or {}
        try:
            interval = common.parse_duration(spec.get("pollInterval"))
        except ValueError:
            interval = 0.0
        with self._timers_lock:
            current = self._timers.get(name)
            if current is not None and (interval == 0 or current.interval != interval):
                self._timers.pop(name).stop()
                current = None
            if current is None and interval > 0 and spec.get("backupTargetURL"):
                self._timers[name] = _PollTimer(self, name, interval)

    def reconcile(self, key):
        self._workers.add(threading.current_thread())
        name = key[3]
        store = self.store
        target = common.get(store, "backuptargets", name)
        if target is None:
            self._stop_timer(name)
            return None
        if (target.get("status") or {}).get("ownerID") != LAB_NODE:
            target = common.update_status(store, "backuptargets", name, lambda s: s.update(ownerID=LAB_NODE))
            if target is None:
                return None
        spec = target.get("spec") or {}
        if target["metadata"].get("deletionTimestamp"):
            self._stop_timer(name)
            self.cleanup_backup_resources(name)
            common.remove_finalizer(store, "backuptargets", name)
            return None

        self._ensure_timer(target)
        if not self._sync.needed(target):
            return None
        sync_time = common.rfc3339()
        cluster_bvs, duplicates = self._cluster_backup_volumes(name)
        for bv_name in sorted(duplicates):
            common.delete_cr_only(store, "backupvolumes", bv_name)

        if not spec.get("backupTargetURL"):
            self._stop_timer(name)
            self._set_unavailable(name, EMPTY_URL_MESSAGE)
            self.cleanup_backup_resources(name)
            return None

        try:
            backupstore = backupstore_for_target(self.ctx, target)
        except TargetClientError as exc:
            # newBackupTargetClient failed: Longhorn logs and retries, status untouched (ref §1.1).
            LOG.warning("backup target %s: %s", name, exc.message)
            return 5.0
        except TargetUnavailable as exc:
            self._set_unavailable(name, exc.message)
            return None

        if not (target.get("status") or {}).get("available"):
            # ref §1.1 (#11337): flip to available and return; the full sync runs on the next pass.
            def _available(status):
                status["available"] = True
                status["conditions"] = common.set_condition(status.get("conditions"), CONDITION_UNAVAILABLE, "False", "", "")
            common.update_status(store, "backuptargets", name, _available)
            return None

        try:
            self._sync_backup_volumes(target, backupstore, cluster_bvs)
            if name == DEFAULT_BACKUP_TARGET:
                self._sync_system_backups(target, backupstore)
        except Exception as exc:  # pylint: disable=broad-except
            # Errors past the availability check are not target errors: no lastSyncedAt, retry.
            LOG.warning("backup target %s: sync failed: %s", name, exc)
            return 2.0
        common.update_status(store, "backuptargets", name, lambda s: s.update(lastSyncedAt=sync_time))
        self._sync.synced(target)
        return None

    def _set_unavailable(self, name, message):
        def _unavailable(status):
            status["available"] = False
            status["conditions"] = common.set_condition(status.get("conditions"), CONDITION_UNAVAILABLE, "True",
                                                        CONDITION_UNAVAILABLE, message)
        common.update_status(self.store, "backuptargets", name, _unavailable)

    def _cluster_backup_volumes(self, target_name):
        """getClusterBVsDuplicatedBVs: ``{volume: bv}`` plus the CRs to drop as duplicates."""
        by_volume = {}
        duplicates = set()
        for bv in common.list_objects(self.store, "backupvolumes", "%s=%s" % (common.LABEL_BACKUP_TARGET, target_name)):
            bv_name = bv["metadata"]["name"]
            if bv["metadata"].get("deletionTimestamp"):
                continue
            if not self.legacy:
                spec = bv.get("spec") or {}
                if not spec.get("backupTargetName") or not spec.get("volumeName") or spec.get("backupTargetName") != target_name:
                    duplicates.add(bv_name)
                    continue
            volume_name = backup_volume_of(bv)
            existing = by_volume.get(volume_name)
            if existing is not None:
                if existing["metadata"]["creationTimestamp"] <= bv["metadata"]["creationTimestamp"]:
                    duplicates.add(bv_name)
                    continue
                duplicates.add(existing["metadata"]["name"])
            by_volume[volume_name] = bv
        return by_volume, duplicates

    def _sync_backup_volumes(self, target, backupstore, cluster_bvs):
        """syncBackupVolume: pull new volumes, drop vanished ones CR-only, request a sync of the rest (ref §1.4)."""
        store = self.store
        target_name = target["metadata"]["name"]
        remote = set(backupstore.list_volume_names())
        for volume_name in sorted(remote - set(cluster_bvs)):
            bv = {
                "metadata": {
                    "name": backup_volume_cr_name(volume_name, target_name, self.legacy),
                    "namespace": target["metadata"]["namespace"],
                    "labels": {common.LABEL_BACKUP_TARGET: target_name, common.LABEL_BACKUP_VOLUME: volume_name},
                    "ownerReferences": [common.owner_reference(target)],
                },
                "spec": {} if self.legacy else {"backupTargetName": target_name, "volumeName": volume_name},
            }
            try:
                store.create(common.rtype(store, "backupvolumes"), bv, user=common.MANAGER)
            except errors.AlreadyExists:
                pass
        for volume_name in sorted(set(cluster_bvs) - remote):
            common.delete_cr_only(store, "backupvolumes", cluster_bvs[volume_name]["metadata"]["name"])
        for volume_name, bv in sorted(cluster_bvs.items()):
            if volume_name in remote:
                common.request_sync(store, "backupvolumes", bv["metadata"]["name"])

    def _sync_system_backups(self, target, backupstore):
        """syncSystemBackup (ref §1.7): only for the default target."""
        store = self.store
        if store.registry.by_plural("systembackups", common.GROUP) is None:
            return
        ready = {sb["metadata"]["name"] for sb in common.list_objects(store, "systembackups")
                 if (sb.get("status") or {}).get("state") == "Ready"}
        remote = {}
        for entry in backupstore.list_system_backups():
            remote[entry["name"]] = entry["version"]
        for name in sorted(set(remote) - ready):
            if common.get(store, "systembackups", name) is not None:
                continue
            try:
                store.create(common.rtype(store, "systembackups"), {
                    "metadata": {"name": name, "namespace": target["metadata"]["namespace"],
                                 "labels": {common.LABEL_VERSION: remote[name]},
                                 "ownerReferences": [common.owner_reference(target)]},
                }, user=common.MANAGER)
            except errors.AlreadyExists:
                pass
        for name in sorted(ready - set(remote)):
            common.delete_cr_only(store, "systembackups", name)

    def cleanup_backup_resources(self, target_name):
        """cleanUpAllBackupRelatedResources: every BackupVolume of the target (and, for default, SystemBackup) CR-only."""
        for bv in common.list_objects(self.store, "backupvolumes", "%s=%s" % (common.LABEL_BACKUP_TARGET, target_name)):
            common.delete_cr_only(self.store, "backupvolumes", bv["metadata"]["name"])
        if target_name == DEFAULT_BACKUP_TARGET:
            for sb in common.list_objects(self.store, "systembackups"):
                common.delete_cr_only(self.store, "systembackups", sb["metadata"]["name"])


CONTROLLERS = [BackupTargetController]
