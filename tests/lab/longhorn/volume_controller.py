# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Longhorn volume controller of the emulator (ref §1.5).

It plays the parts of several longhorn-manager controllers for one volume:

- volume attachment: the VolumeAttachment tickets decide where the volume is attached
  (``controller/volume_attachment_controller.go``), the volume walks
  ``creating -> detached -> attaching -> attached -> detaching -> detached``;
- restore: ``checkAndInitVolumeRestore`` / ``checkAndFinishVolumeRestore`` and the
  volume-restore controller's ticket; the data moves in a worker thread;
- Kubernetes status: ``controller/kubernetes_pv_controller.go`` fills ``status.kubernetesStatus``
  from the PV, its claim and the pods using the claim.

Status is written with ``store.modify(..., subresource="status")`` and a function that sets
only the fields this controller owns: ``lastBackup``/``lastBackupAt`` belong to the backup side.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime
import json
import logging
import os
import shutil
import threading
import time

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import attachments
from . import settings as lh_settings

LOG = logging.getLogger("lab.longhorn.volume")

VOLUMES = ("longhorn.io", "volumes")
BACKUPS = ("longhorn.io", "backups")
BACKUP_TARGETS = ("longhorn.io", "backuptargets")
VOLUME_ATTACHMENTS = attachments.VOLUME_ATTACHMENTS
PVS = ("", "persistentvolumes")
PVCS = ("", "persistentvolumeclaims")
PODS = ("", "pods")

LONGHORN_FINALIZER = "longhorn.io"
LONGHORN_DRIVER = "driver.longhorn.io"
# Also accepted by kubernetes_pv_controller getCSIVolumeHandleFromPV.
DEPRECATED_DRIVER = "io.rancher.longhorn"
KUBERNETES_STATUS_LABEL = "KubernetesStatus"

COND_SCHEDULED = "Scheduled"
COND_RESTORE = "Restore"
COND_TOO_MANY_SNAPSHOTS = "TooManySnapshots"
COND_WAIT_FOR_BACKING_IMAGE = "WaitForBackingImage"
REASON_RESTORE_IN_PROGRESS = "RestoreInProgress"
REASON_RESTORE_FAILURE = "RestoreFailure"
# lm@v1.10.2:controller/volume_controller.go closeVolumeDependentResources.
RESTORE_FAILURE_MESSAGE = "All replica restore failed and the volume became Faulted"

# lm@v1.10.2:k8s/pkg/apis/longhorn/v1beta2/volumeattachment.go GetAttacherPriorityLevel.
TICKET_PRIORITY = {
    attachments.RESTORE_CONTROLLER: 2000, "volume-expansion-controller": 2000,
    attachments.LONGHORN_API: 1000,
    attachments.CSI_ATTACHER: 900, "salvage-controller": 900, "share-manager-controller": 900,
}
DEFAULT_TICKET_PRIORITY = 800
RECURRING_JOB_PREFIX = "recurring-job.longhorn.io/"
RECURRING_JOB_GROUP_PREFIX = "recurring-job-group.longhorn.io/"
DEFAULT_RECURRING_JOB_GROUP_LABEL = RECURRING_JOB_GROUP_PREFIX + "default"
MB = 1024 * 1024


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions, ctype, status, reason="", message=""):
    """types.SetCondition: lastTransitionTime moves only when the status changes."""
    conditions = list(conditions or [])
    for index, cond in enumerate(conditions):
        if cond.get("type") == ctype:
            updated = dict(cond)
            if cond.get("status") != status:
                updated["lastTransitionTime"] = now_rfc3339()
            updated.update({"status": status, "reason": reason, "message": message})
            conditions[index] = updated
            return conditions
    conditions.append({"type": ctype, "status": status, "reason": reason, "message": message,
                       "lastProbeTime": "", "lastTransitionTime": now_rfc3339()})
    return conditions


def get_condition(conditions, ctype):
    for cond in conditions or []:
        if cond.get("type") == ctype:
            return cond
    return {"type": ctype, "status": "Unknown"}


def restore_ticket_id(volume_name):
    # longhorn.GetAttachmentTicketID(AttacherTypeVolumeRestoreController, volName).
    return "%s-%s" % (attachments.RESTORE_CONTROLLER, volume_name)


def empty_kubernetes_status():
    return {"pvName": "", "pvStatus": "", "namespace": "", "pvcName": "", "lastPVCRefAt": "", "lastPodRefAt": "",
            "workloadsStatus": None}


def initial_status(volume):
    """What a freshly created volume reports (lm@v1.10.2 volume status fields)."""
    return {
        "ownerID": attachments.LAB_NODE,
        "state": "creating",
        "robustness": "unknown",
        "currentNodeID": "",
        "currentImage": (volume.get("spec") or {}).get("image", ""),
        "currentMigrationNodeID": "",
        "actualSize": 0,
        "lastDegradedAt": "",
        "restoreRequired": False,
        "restoreInitiated": False,
        "isStandby": False,
        "frontendDisabled": False,
        "expansionRequired": False,
        "remountRequestedAt": "",
        "shareEndpoint": "",
        "shareState": "",
        "kubernetesStatus": empty_kubernetes_status(),
        "cloneStatus": {"sourceVolume": "", "snapshot": "", "state": "", "attemptCount": 0, "nextAllowedAttemptAt": ""},
        "conditions": [
            {"type": COND_RESTORE, "status": "False", "reason": "", "message": "", "lastProbeTime": "", "lastTransitionTime": now_rfc3339()},
            {"type": COND_SCHEDULED, "status": "True", "reason": "", "message": "", "lastProbeTime": "", "lastTransitionTime": now_rfc3339()},
            {"type": COND_TOO_MANY_SNAPSHOTS, "status": "False", "reason": "", "message": "", "lastProbeTime": "",
             "lastTransitionTime": now_rfc3339()},
            {"type": COND_WAIT_FOR_BACKING_IMAGE, "status": "False", "reason": "", "message": "", "lastProbeTime": "",
             "lastTransitionTime": now_rfc3339()},
        ],
    }


def pv_volume_handle(pv):
    csi = ((pv or {}).get("spec") or {}).get("csi") or {}
    if csi.get("driver") not in (LONGHORN_DRIVER, DEPRECATED_DRIVER):
        return ""
    return csi.get("volumeHandle") or ""


def pod_claim_names(pod):
    """Claims a pod uses, including generic ephemeral volumes (kubernetes_pv_controller getAssociatedPods)."""
    meta = (pod or {}).get("metadata") or {}
    names = set()
    for vol in ((pod or {}).get("spec") or {}).get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            names.add(claim)
        if vol.get("ephemeral") is not None:
            names.add("%s-%s" % (meta.get("name", ""), vol.get("name", "")))
    return names


class _Index:
    """volume -> PV name and (namespace, claim) -> pod names, kept from store events (no O(n) scans per reconcile)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pv_by_volume = {}
        self.pods_by_claim = {}

    def reset(self):
        with self.lock:
            self.pv_by_volume = {}
            self.pods_by_claim = {}

    def note_pv(self, pv, deleted):
        name = pv["metadata"]["name"]
        handle = pv_volume_handle(pv)
        with self.lock:
            for volume, pv_name in list(self.pv_by_volume.items()):
                if pv_name == name and (deleted or volume != handle):
                    del self.pv_by_volume[volume]
            if handle and not deleted:
                self.pv_by_volume[handle] = name

    def note_pod(self, pod, old, deleted):
        meta = pod["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        with self.lock:
            for claim in pod_claim_names(old) if old else ():
                self.pods_by_claim.get((namespace, claim), set()).discard(name)
            for claim in pod_claim_names(pod):
                pods = self.pods_by_claim.setdefault((namespace, claim), set())
                if deleted:
                    pods.discard(name)
                else:
                    pods.add(name)

    def pv_for(self, volume):
        with self.lock:
            return self.pv_by_volume.get(volume)

    def pods_for(self, namespace, claim):
        with self.lock:
            return sorted(self.pods_by_claim.get((namespace, claim), ()))


class VolumeController(Controller):
    """Volume lifecycle, attachment tickets, restore and kubernetesStatus (ref §1.5)."""

    name = "longhorn-volume"
    watches = (VOLUMES, VOLUME_ATTACHMENTS, PVS, PVCS, PODS)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._index = _Index()
        limit = lh_settings.get_int(self.store, "concurrent-volume-backup-restore-per-node-limit", default=5) or 5
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, limit), thread_name_prefix="lab-restore")
        self._restores_lock = threading.Lock()
        self._restores = {}          # volume uid -> Future of the running restore
        self._standby_restored = set()   # uids of DR volumes whose backup is restored, waiting for activation

    # ---- event routing -----------------------------------------------------
    def _volume_key(self, name):
        return (VOLUMES[0], VOLUMES[1], LONGHORN_NAMESPACE, name)

    def keys_for(self, event):
        obj = event.obj
        meta = obj.get("metadata", {})
        key = event.rtype_key
        if key == VOLUMES:
            return [self._volume_key(meta["name"])]
        if key == VOLUME_ATTACHMENTS:
            return [self._volume_key((obj.get("spec") or {}).get("volume") or meta["name"])]
        if key == PVS:
            self._index.note_pv(obj, event.type == "DELETED")
            handles = {pv_volume_handle(obj), pv_volume_handle(event.old) if event.old else ""}
            return [self._volume_key(h) for h in handles if h]
        if key == PVCS:
            volumes = set()
            for pvc in (obj, event.old):
                pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
                if pv_name:
                    handle = pv_volume_handle(self.store.try_get("persistentvolumes", "", pv_name))
                    if handle:
                        volumes.add(handle)
            return [self._volume_key(v) for v in volumes]
        if key == PODS:
            self._index.note_pod(obj, event.old, event.type == "DELETED")
            volumes = set()
            namespace = meta.get("namespace", "")
            for claim in pod_claim_names(obj) | pod_claim_names(event.old):
                pvc = self.store.try_get("persistentvolumeclaims", namespace, claim)
                pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
                handle = pv_volume_handle(self.store.try_get("persistentvolumes", "", pv_name)) if pv_name else ""
                if handle:
                    volumes.add(handle)
            return [self._volume_key(v) for v in volumes]
        return []

    def initial_keys(self):
        """Rebuild the PV/pod indexes (after a start or a wipe) and queue every volume."""
        self._index.reset()
        for pv in self.store.list("persistentvolumes")[0]:
            self._index.note_pv(pv, False)
        for pod in self.store.list("pods")[0]:
            self._index.note_pod(pod, None, False)
        rtype = self._rtype(VOLUMES)
        if rtype is None:
            return []
        return [self._volume_key(v["metadata"]["name"]) for v in self.store.list(rtype, LONGHORN_NAMESPACE)[0]]

    # ---- helpers -----------------------------------------------------------
    def _rtype(self, key):
        return self.store.registry.by_plural(key[1], key[0])

    def _modify_status(self, name, uid, mutate):
        """Apply ``mutate(status)`` to the volume's status if it is still the same object."""
        rtype = self._rtype(VOLUMES)

        def _apply(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(VOLUMES[1], name, VOLUMES[0])
            status = obj.setdefault("status", {})
            mutate(status)
        return self.store.modify(rtype, LONGHORN_NAMESPACE, name, _apply, subresource="status", user="longhorn-manager")

    def _modify_spec(self, name, uid, mutate):
        rtype = self._rtype(VOLUMES)

        def _apply(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(VOLUMES[1], name, VOLUMES[0])
            mutate(obj)
        return self.store.modify(rtype, LONGHORN_NAMESPACE, name, _apply, user="longhorn-manager")

    @property
    def _step(self):
        return max(0.0, float(self.ctx.config.step_delay))

    # ---- reconcile ---------------------------------------------------------
    def reconcile(self, key):
        rtype = self._rtype(VOLUMES)
        if rtype is None:
            return None
        name = key[3]
        volume = self.store.try_get(rtype, LONGHORN_NAMESPACE, name)
        if volume is None:
            return None
        uid = volume["metadata"]["uid"]
        if volume["metadata"].get("deletionTimestamp"):
            return self._finalize(volume)
        status = volume.get("status") or {}
        if not status.get("state"):
            initial = initial_status(volume)
            self._modify_status(name, uid, lambda s: [s.setdefault(k, copy.deepcopy(v)) for k, v in initial.items()])
            return 0.0
        self._fixup_labels(volume)
        if status["state"] == "creating":
            # The replicas and the VolumeAttachment exist from now on.
            attachments.ensure_volume_attachment(self.store, name)
            self._modify_status(name, uid, self._to_detached)
            return self._step or 0.0
        if (volume.get("spec") or {}).get("fromBackup") and not status.get("restoreInitiated"):
            return self._init_restore(volume)
        self._sync_restore_ticket(volume)
        delay = self._attach_detach(volume)
        self._sync_kubernetes_status(rtype, name, uid)
        return delay

    def _fixup_labels(self, volume):
        """datastore.FixupRecurringJob: a volume without job labels joins the ``default`` group (ref §1.9)."""
        spec = volume.get("spec") or {}
        labels = volume["metadata"].get("labels") or {}
        if spec.get("cloneMode") == "linked-clone":
            return
        if any(k.startswith(RECURRING_JOB_PREFIX) or k.startswith(RECURRING_JOB_GROUP_PREFIX) for k in labels):
            return

        def _label(obj):
            obj["metadata"].setdefault("labels", {})
            obj["metadata"]["labels"] = obj["metadata"]["labels"] or {}
            if not any(k.startswith(RECURRING_JOB_PREFIX) or k.startswith(RECURRING_JOB_GROUP_PREFIX) for k in obj["metadata"]["labels"]):
                obj["metadata"]["labels"][DEFAULT_RECURRING_JOB_GROUP_LABEL] = "enabled"
        self._modify_spec(volume["metadata"]["name"], volume["metadata"]["uid"], _label)

    @staticmethod
    def _to_detached(status):
        failed_restore = status.get("robustness") == "faulted" and (status.get("restoreRequired") or status.get("isStandby"))
        status["state"] = "detached"
        status["currentNodeID"] = ""
        status["frontendDisabled"] = False
        if failed_restore:
            # closeVolumeDependentResources keeps the failure visible on the Restore condition.
            status["conditions"] = set_condition(status.get("conditions"), COND_RESTORE, "False", REASON_RESTORE_FAILURE,
                                                 RESTORE_FAILURE_MESSAGE)
        else:
            status["conditions"] = set_condition(status.get("conditions"), COND_RESTORE, "False")
            if status.get("robustness") != "faulted":
                status["robustness"] = "unknown"

    # ---- deletion ----------------------------------------------------------
    def _finalize(self, volume):
        name, uid = volume["metadata"]["name"], volume["metadata"]["uid"]
        if (volume.get("status") or {}).get("state") != "deleting":
            def _deleting(status):
                status["state"] = "deleting"
                status["currentNodeID"] = ""
            self._modify_status(name, uid, _deleting)
        self._cancel_restore(uid)
        va_rtype = self._rtype(VOLUME_ATTACHMENTS)
        if va_rtype is not None:
            # The VolumeAttachment mutator gives it the longhorn.io finalizer; its controller drops it on deletion.
            try:
                self.store.delete(va_rtype, LONGHORN_NAMESPACE, name, user="longhorn-manager")
                self.store.modify(va_rtype, LONGHORN_NAMESPACE, name, lambda o: o["metadata"].update(
                    finalizers=[f for f in o["metadata"].get("finalizers") or [] if f != LONGHORN_FINALIZER]), user="longhorn-manager")
            except errors.NotFound:
                pass
        # The replicas' data (and the snapshots in it) go with the volume.
        shutil.rmtree(self.ctx.config.path("volumes", name), ignore_errors=True)
        shutil.rmtree(self.ctx.config.path("snapshots", name), ignore_errors=True)

        def _drop_finalizer(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(VOLUMES[1], name, VOLUMES[0])
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != LONGHORN_FINALIZER]
        try:
            self.store.modify(self._rtype(VOLUMES), LONGHORN_NAMESPACE, name, _drop_finalizer, user="longhorn-manager")
        except errors.NotFound:
            pass
        return None

    # ---- restore (ref §1.5 restore lifecycle) --------------------------------
    def _backup_for(self, volume):
        from .volume_webhooks import decode_from_backup  # pylint: disable=import-outside-toplevel
        backup_name, source_volume = decode_from_backup(volume["spec"]["fromBackup"])
        rtype = self._rtype(BACKUPS)
        backup = self.store.try_get(rtype, LONGHORN_NAMESPACE, backup_name) if rtype is not None else None
        return backup_name, source_volume, backup

    def _init_restore(self, volume):
        """checkAndInitVolumeRestore (ref §1.5 step 2)."""
        name, uid = volume["metadata"]["name"], volume["metadata"]["uid"]
        try:
            backup_name, _source, backup = self._backup_for(volume)
        except ValueError as exc:
            LOG.warning("volume %s: failed to get backup name from backup URL: %s", name, exc)
            return 5.0
        if backup is None:
            LOG.warning("volume %s: failed to inspect the backup config: backup %s not found", name, backup_name)
            return 1.0
        backup_status = backup.get("status") or {}
        kube_status = empty_kubernetes_status()
        label = (backup_status.get("labels") or {}).get(KUBERNETES_STATUS_LABEL)
        if label:
            try:
                restored = json.loads(label)
            except ValueError:
                LOG.warning("volume %s: ignore KubernetesStatus JSON for backup %s", name, backup_name)
            else:
                if isinstance(restored, dict):
                    kube_status.update({k: v for k, v in restored.items() if k in kube_status})
                    snapshot_time = backup_status.get("snapshotCreatedAt") or ""
                    if kube_status.get("pvcName") and not kube_status.get("lastPVCRefAt"):
                        kube_status["lastPVCRefAt"] = snapshot_time
                    if kube_status.get("workloadsStatus") and not kube_status.get("lastPodRefAt"):
                        kube_status["lastPodRefAt"] = snapshot_time
                    # Do not restore the PersistentVolume fields.
                    kube_status["pvName"] = ""
                    kube_status["pvStatus"] = ""
        try:
            actual_size = int(str(backup_status.get("size") or "0"))
        except ValueError:
            actual_size = 0
        standby = bool((volume.get("spec") or {}).get("Standby"))

        def _init(status):
            status["actualSize"] = actual_size
            status["kubernetesStatus"] = kube_status
            if standby:
                status["isStandby"] = True
            status["restoreRequired"] = True
            status["restoreInitiated"] = True
        self._modify_status(name, uid, _init)
        return 0.0

    def _sync_restore_ticket(self, volume):
        """The volume-restore controller: a ticket while restoreRequired (ref §1.5 step 2)."""
        name = volume["metadata"]["name"]
        ticket_id = restore_ticket_id(name)
        present = ticket_id in attachments.tickets(self.store, name)
        if (volume.get("status") or {}).get("restoreRequired"):
            if not present:
                attachments.add_ticket(self.store, name, ticket_id, attachments.RESTORE_CONTROLLER, disable_frontend=True)
        elif present:
            attachments.remove_ticket(self.store, name, ticket_id)

    def _restore_running(self, uid):
        with self._restores_lock:
            future = self._restores.get(uid)
            return future is not None and not future.done()

    def _cancel_restore(self, uid):
        with self._restores_lock:
            future = self._restores.pop(uid, None)
            self._standby_restored.discard(uid)
        if future is not None:
            future.cancel()

    def _start_restore(self, volume):
        uid = volume["metadata"]["uid"]
        with self._restores_lock:
            future = self._restores.get(uid)
            if future is not None and not future.done():
                return
            self._restores[uid] = self._pool.submit(self._restore_worker, copy.deepcopy(volume))

    def _restore_worker(self, volume):
        name, uid = volume["metadata"]["name"], volume["metadata"]["uid"]
        try:
            self._restore_data(volume)
        except Exception as exc:  # pylint: disable=broad-except
            LOG.warning("volume %s: restore failed: %s", name, exc)
            self._finish_restore(name, uid, failed=True)
        else:
            self._finish_restore(name, uid, failed=False)

    def _restore_data(self, volume):
        """Read the backup from the BackupVolume's target, verify every block, write the data dir (ref §1.5 step 4, §3.3)."""
        from . import targets, volumedata  # pylint: disable=import-outside-toplevel

        name = volume["metadata"]["name"]
        if name in self.ctx.faults.restore_failures:
            raise RuntimeError("injected restore failure")
        backup_name, source_volume, backup = self._backup_for(volume)
        if backup is None:
            raise RuntimeError("backup %s not found" % backup_name)
        # Only the backup/volume query parameters of fromBackup matter; the store is the target CR's.
        target_name = (backup.get("status") or {}).get("backupTargetName") or volume["spec"].get("backupTargetName") or "default"
        target = targets.get_backup_target(self.store, target_name)
        if target is None:
            raise RuntimeError("backup target %s not found" % target_name)
        backupstore = targets.backupstore_for_target(self.ctx, target, probe=False)
        image, _size = backupstore.read_image(source_volume, backup_name)
        speed = float(self.ctx.config.restore_speed_mbps or 0)
        if speed > 0:
            moved = sum(len(block) for _offset, block in volumedata.split_blocks(image))
            time.sleep(moved / (speed * MB))
        with self._restores_lock:
            if self._restores.get(volume["metadata"]["uid"]) is None:
                return
        volumedata.dir_from_image(image, self.ctx.volume_data_dir(name))

    def _finish_restore(self, name, uid, failed):
        def _done(status):
            if failed:
                status["robustness"] = "faulted"
                status["conditions"] = set_condition(status.get("conditions"), COND_RESTORE, "False", REASON_RESTORE_FAILURE,
                                                     RESTORE_FAILURE_MESSAGE)
                return
            status["conditions"] = set_condition(status.get("conditions"), COND_RESTORE, "False")
            if status.get("isStandby"):
                # A DR volume stays restoring until it is activated.
                with self._restores_lock:
                    self._standby_restored.add(uid)
                return
            status["restoreRequired"] = False
        try:
            self._modify_status(name, uid, _done)
        except errors.NotFound:
            pass
        except errors.ApiError as exc:
            LOG.warning("volume %s: cannot record the restore result: %s", name, exc.message)

    # ---- attach / detach ---------------------------------------------------
    def _attach_detach(self, volume):
        name, uid = volume["metadata"]["name"], volume["metadata"]["uid"]
        spec = volume.get("spec") or {}
        status = volume.get("status") or {}
        state = status.get("state")
        tickets = attachments.tickets(self.store, name)
        faulted = status.get("robustness") == "faulted"
        chosen = None
        if tickets and not faulted:
            chosen = sorted(tickets.values(), key=lambda t: (-TICKET_PRIORITY.get(t.get("type"), DEFAULT_TICKET_PRIORITY), t.get("id", "")))[0]
        want_disable = chosen is not None and ((chosen.get("parameters") or {}).get("disableFrontend") == "true")

        if chosen is None or (state == "attached" and bool(spec.get("disableFrontend")) != want_disable and not self._restore_running(uid)):
            # No ticket left (or the top ticket needs other parameters): detach.
            if state in ("attached", "attaching"):
                self._modify_spec(name, uid, lambda o: o["spec"].update({"nodeID": ""}))
                self._modify_status(name, uid, lambda s: s.update({"state": "detaching"}))
                self._sync_ticket_statuses(name, tickets, None)
                return self._step or 0.0
            if state == "detaching":
                used = self._used_bytes(name)

                def _detached(status):
                    self._to_detached(status)
                    if used is not None:
                        status["actualSize"] = used
                self._modify_status(name, uid, _detached)
                self._sync_ticket_statuses(name, tickets, None)
                return None
            self._sync_ticket_statuses(name, tickets, None)
            return None

        node = chosen.get("nodeID") or attachments.LAB_NODE
        if state in ("detached", "detaching"):
            def _set_node(obj):
                obj["spec"]["nodeID"] = node
                obj["spec"]["disableFrontend"] = want_disable
            self._modify_spec(name, uid, _set_node)
            self._modify_status(name, uid, lambda s: s.update({"state": "attaching"}))
            return self._step or 0.0
        if state == "attaching":
            def _attached(s):
                s.update({"state": "attached", "currentNodeID": node, "robustness": "healthy", "frontendDisabled": want_disable,
                          "currentImage": spec.get("image", s.get("currentImage", ""))})
            volume = self._modify_status(name, uid, _attached)
        self._sync_ticket_statuses(name, tickets, volume)
        status = volume.get("status") or {}
        with self._restores_lock:
            standby_restored = uid in self._standby_restored
        if status.get("state") == "attached" and status.get("restoreRequired") and not standby_restored:
            if get_condition(status.get("conditions"), COND_RESTORE).get("reason") != REASON_RESTORE_IN_PROGRESS:
                self._modify_status(name, uid, lambda s: s.update(
                    conditions=set_condition(s.get("conditions"), COND_RESTORE, "True", REASON_RESTORE_IN_PROGRESS)))
            self._start_restore(volume)
        if status.get("isStandby") and not spec.get("Standby") and standby_restored:
            # Activation of a DR volume: the restore is finished once it is no longer standby.
            self._modify_status(name, uid, lambda s: s.update({"isStandby": False, "restoreRequired": False}))
            with self._restores_lock:
                self._standby_restored.discard(uid)
        return None

    def _used_bytes(self, name):
        """Bytes the volume's data occupies, for status.actualSize (ref §1.5 lists the field; the engine reports the
        space its data uses). The lab measures the files on the volume when it detaches, after the data is flushed."""
        path = self.ctx.volume_data_dir(name)
        if not os.path.isdir(path):
            return None
        total = 0
        for root, _dirs, files in os.walk(path):
            for file_name in files:
                try:
                    total += os.lstat(os.path.join(root, file_name)).st_size
                except OSError:
                    pass
        return total

    def _sync_ticket_statuses(self, name, tickets, volume):
        """attachmentTicketStatuses as the VolumeAttachment controller reports them."""
        rtype = self._rtype(VOLUME_ATTACHMENTS)
        if rtype is None:
            return
        status = (volume or {}).get("status") or {}
        spec = (volume or {}).get("spec") or {}
        attached = volume is not None and status.get("state") == "attached"

        def _apply(obj):
            current = (obj.get("status") or {}).get("attachmentTicketStatuses") or {}
            statuses = {}
            for ticket_id, ticket in ((obj.get("spec") or {}).get("attachmentTickets") or {}).items():
                entry = dict(current.get(ticket_id) or {"id": ticket_id, "conditions": []})
                entry["id"] = ticket_id
                entry["generation"] = ticket.get("generation", 0)
                wanted = (ticket.get("parameters") or {}).get("disableFrontend", "false")
                if not attached:
                    satisfied, reason, message = False, "", ""
                elif (ticket.get("nodeID") or attachments.LAB_NODE) != status.get("currentNodeID"):
                    satisfied, reason = False, ""
                    message = "the volume is currently attached to different node %s " % status.get("currentNodeID")
                elif wanted in ("true", "false") and (wanted == "true") != bool(spec.get("disableFrontend")):
                    satisfied, reason = False, "AttachedWithIncompatibleParameters"
                    message = "volume %s has already attached to node %s with incompatible parameters" % (name, status.get("currentNodeID"))
                else:
                    satisfied, reason, message = True, "", ""
                entry["satisfied"] = satisfied
                entry["conditions"] = set_condition(entry.get("conditions"), "Satisfied", "True" if satisfied else "False", reason, message)
                statuses[ticket_id] = entry
            obj.setdefault("status", {})["attachmentTicketStatuses"] = statuses
        try:
            self.store.modify(rtype, LONGHORN_NAMESPACE, name, _apply, subresource="status", user="longhorn-manager")
        except errors.NotFound:
            pass

    # ---- kubernetesStatus (kubernetes_pv_controller) -------------------------
    def _sync_kubernetes_status(self, rtype, name, uid):
        volume = self.store.try_get(rtype, LONGHORN_NAMESPACE, name)
        if volume is None or volume["metadata"].get("uid") != uid:
            return
        current = (volume.get("status") or {}).get("kubernetesStatus") or empty_kubernetes_status()
        desired = self._kubernetes_status(name, copy.deepcopy(current))
        if desired is not None and desired != current:
            self._modify_status(name, uid, lambda s: s.update(kubernetesStatus=desired))

    def _find_pv(self, volume_name):
        pv_name = self._index.pv_for(volume_name)
        if not pv_name:
            return None
        pv = self.store.try_get("persistentvolumes", "", pv_name)
        if pv is None or pv_volume_handle(pv) != volume_name:
            return None
        return pv

    def _kubernetes_status(self, volume_name, ks):
        for key, value in empty_kubernetes_status().items():
            ks.setdefault(key, value)
        pv = self._find_pv(volume_name)
        if pv is None or pv["metadata"].get("deletionTimestamp"):
            if ks.get("pvName"):
                # cleanupForPVDeletion: the PV is gone, keep the history.
                if ks.get("pvcName") and not ks.get("lastPVCRefAt"):
                    ks["lastPVCRefAt"] = now_rfc3339()
                if ks.get("workloadsStatus") and not ks.get("lastPodRefAt"):
                    ks["lastPodRefAt"] = now_rfc3339()
                ks["pvName"] = ""
                ks["pvStatus"] = ""
            return ks
        pv_name = pv["metadata"]["name"]
        if ks.get("pvName") != pv_name:
            # An existing volume may be used/reused by this PV.
            ks = empty_kubernetes_status()
        last_pv_status = ks.get("pvStatus")
        phase = (pv.get("status") or {}).get("phase") or ""
        ks["pvName"] = pv_name
        ks["pvStatus"] = phase
        claim_ref = (pv.get("spec") or {}).get("claimRef")
        if claim_ref:
            if phase == "Bound":
                ks["pvcName"] = claim_ref.get("name", "")
                ks["namespace"] = claim_ref.get("namespace", "")
                ks["lastPVCRefAt"] = ""
            elif last_pv_status == "Bound" and not ks.get("lastPVCRefAt"):
                # The claim is no longer bound: keep it as history.
                ks["lastPVCRefAt"] = now_rfc3339()
                if ks.get("workloadsStatus") and not ks.get("lastPodRefAt"):
                    ks["lastPodRefAt"] = now_rfc3339()
        elif not ks.get("lastPVCRefAt"):
            if phase == "Bound":
                LOG.warning("PV %s is Bound but has no claimRef", pv_name)
                return None
            if ks.get("pvcName"):
                ks["lastPVCRefAt"] = now_rfc3339()
                if ks.get("workloadsStatus") and not ks.get("lastPodRefAt"):
                    ks["lastPodRefAt"] = now_rfc3339()
        pods = self._pods_for(ks) if ks.get("pvStatus") == "Bound" else []
        if not pods:
            if ks.get("workloadsStatus") and not ks.get("lastPodRefAt"):
                ks["lastPodRefAt"] = now_rfc3339()
            return ks
        ks["lastPodRefAt"] = ""
        workloads = []
        for pod in pods:
            owner_name, owner_kind = "", ""
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("name") and ref.get("kind"):
                    owner_name, owner_kind = ref["name"], ref["kind"]
                    break
            workloads.append({"podName": pod["metadata"]["name"], "podStatus": (pod.get("status") or {}).get("phase") or "",
                              "workloadName": owner_name, "workloadType": owner_kind})
        ks["workloadsStatus"] = workloads
        return ks

    def _pods_for(self, ks):
        namespace, claim = ks.get("namespace") or "", ks.get("pvcName") or ""
        pods = []
        for pod_name in self._index.pods_for(namespace, claim):
            pod = self.store.try_get("pods", namespace, pod_name)
            if pod is not None and claim in pod_claim_names(pod):
                pods.append(pod)
        return pods


CONTROLLERS = [VolumeController]
