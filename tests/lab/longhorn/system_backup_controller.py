# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The SystemBackup controller of the emulator (ref §1.7, §2).

Modelled on ``lm@v1.10.2:controller/system_backup_controller.go``. A backup made in this
cluster walks ``"" -> CreatingVolumeBackups -> CreatingBackingImageBackups -> Generating ->
Uploading -> Ready``; one found in the store (label ``longhorn.io/version``) walks
``"" -> Syncing -> Ready``. The long phases run in worker threads, as upstream runs goroutines,
and record the next state themselves.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime
import io
import logging
import threading
import time
import uuid
import zipfile

import yaml

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import settings as lh_settings
from . import snapshots as lh_snapshots
from .attachments import LAB_NODE
from .volume_controller import now_rfc3339, set_condition

LOG = logging.getLogger("lab.longhorn.systembackup")

SYSTEM_BACKUPS = ("longhorn.io", "systembackups")
VOLUMES = ("longhorn.io", "volumes")
SNAPSHOTS = ("longhorn.io", "snapshots")
BACKUPS = ("longhorn.io", "backups")

STATE_NONE = ""
STATE_VOLUME_BACKUP = "CreatingVolumeBackups"
STATE_BACKING_IMAGE_BACKUP = "CreatingBackingImageBackups"
STATE_GENERATING = "Generating"
STATE_UPLOADING = "Uploading"
STATE_READY = "Ready"
STATE_SYNCING = "Syncing"
STATE_ERROR = "Error"
STATE_DELETING = "Deleting"
FINAL_STATES = (STATE_READY, STATE_ERROR, STATE_DELETING)

POLICY_ALWAYS = "always"
POLICY_IF_NOT_PRESENT = "if-not-present"
POLICY_DISABLED = "disabled"

REASON_GENERATE = "Generate"
REASON_UPLOAD = "Upload"
REASON_SYNC = "Sync"
REASON_DELETE = "Delete"
# constant.EventReasonStart: what upstream records when volume backups fail.
REASON_START = "Start"
REASON_FAILED_STARTING = "FailedStarting"

VERSION_LABEL = "longhorn.io/version"
DELETE_CR_ONLY_LABEL = "longhorn.io/delete-custom-resource-only"
LONGHORN_FINALIZER = "longhorn.io"
DEFAULT_BACKUP_TARGET = "default"
LONGHORN_DRIVER = "driver.longhorn.io"
DEFAULT_KUBERNETES_VERSION = "v1.33.5+k3s1"

# Upstream waits 1 h for a snapshot and 24 h for volume backups (datastore.SystemBackupTimeout,
# VolumeBackupTimeout); the lab bounds them so a stuck backup fails a test in minutes.
SNAPSHOT_TIMEOUT = 300.0
VOLUME_BACKUP_TIMEOUT = 600.0
UPLOAD_TIMEOUT = 120.0
POLL_INTERVAL = 0.05

# meta.GitCommit of the released managers (git rev-parse <tag> in longhorn/longhorn-manager).
GIT_COMMITS = {
    "v1.7.2": "fd2ef9c5ee891fdbc787e475359a48b3f6b0e094",
    "v1.7.3": "56f93bbd0746c9dd1e37af5febbcf98ac5458e77",
    "v1.8.0": "1f343ee4c467de1264682ecb069d8f2a62850977",
    "v1.8.1": "7b9d2aa08a572b2b8bce35b3ff0e90dfaa1b0eaf",
    "v1.8.2": "5859e849c445b6144e8ab12db1472e26dc1ad4bd",
    "v1.9.0": "8bb4d023b6d85475471091d3eedea02a7411bc5c",
    "v1.9.1": "979b8d559b4fe2cb087e39a32d08ce1e329a0cef",
    "v1.9.2": "63c6de30129bb45abe9f10c2d61a869fc6d2ed23",
    "v1.10.0": "22af8fe21683753eb380348eb512a17ee87473a9",
    "v1.10.1": "29b7fda2692c8df5b1aa18c477f77863c7acc1e7",
    "v1.10.2": "020cf3d4c6935a38b57fe6e1305e1e7fb048bd20",
}

# ref §2: the archive's files, ``(directory, file name, listKind, apiVersion, source)``.
# Upstream swaps clusterroles.yaml and clusterrolebindings.yaml; restore decodes by kind.
# The Settings file is "setting.yaml" (generateSystemBackupYAMLsForLonghorn).
ARCHIVE_FILES = (
    ("apiextensions", "customresourcedefinitions", "CustomResourceDefinitionList", "apiextensions.k8s.io/v1", "crds"),
    ("kubernetes", "serviceaccounts", "ServiceAccountList", "v1", "serviceaccounts"),
    ("kubernetes", "clusterroles", "ClusterRoleBindingList", "rbac.authorization.k8s.io/v1", "clusterrolebindings"),
    ("kubernetes", "clusterrolebindings", "ClusterRoleList", "rbac.authorization.k8s.io/v1", "clusterroles"),
    ("kubernetes", "roles", "RoleList", "rbac.authorization.k8s.io/v1", "roles"),
    ("kubernetes", "rolebindings", "RoleBindingList", "rbac.authorization.k8s.io/v1", "rolebindings"),
    ("kubernetes", "daemonsets", "DaemonSetList", "apps/v1", "daemonsets"),
    ("kubernetes", "deployments", "DeploymentList", "apps/v1", "deployments"),
    ("kubernetes", "configmaps", "ConfigMapList", "v1", "configmaps"),
    ("kubernetes", "services", "ServiceList", "v1", "services"),
    ("kubernetes", "storageclasses", "StorageClassList", "storage.k8s.io/v1", "storageclasses"),
    ("kubernetes", "persistentvolumes", "PersistentVolumeList", "v1", "persistentvolumes"),
    ("kubernetes", "persistentvolumeclaims", "PersistentVolumeClaimList", "v1", "persistentvolumeclaims"),
    ("longhorn", "setting", "SettingList", "longhorn.io/v1beta2", "settings"),
    ("longhorn", "engineimages", "EngineImageList", "longhorn.io/v1beta2", "engineimages"),
    ("longhorn", "volumes", "VolumeList", "longhorn.io/v1beta2", "volumes"),
    ("longhorn", "recurringjobs", "RecurringJobList", "longhorn.io/v1beta2", "recurringjobs"),
    ("longhorn", "backingimages", "BackingImageList", "longhorn.io/v1beta2", "backingimages"),
    ("longhorn", "backuptargets", "BackupTargetList", "longhorn.io/v1beta2", "backuptargets"),
)


class PhaseError(Exception):
    """A phase failed for good; ``reason`` goes to the Error condition."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def git_commit(version):
    return GIT_COMMITS.get(version, "")


def generate_name(prefix):
    """bsutil.GenerateName: ``<prefix>-<16 hex>``."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:16])


def go_created_at_to_rfc3339(text):
    from .backupstore import parse_go_time  # pylint: disable=import-outside-toplevel
    try:
        parsed = parse_go_time(text or "")
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


class SystemBackupController(Controller):
    """ref §1.7: SystemBackup state machine, volume backups, archive and upload."""

    name = "longhorn-system-backup"
    watches = (SYSTEM_BACKUPS,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="lab-system-backup")
        self._lock = threading.Lock()
        self._jobs = {}          # uid -> (state, Future)
        self._archives = {}      # uid -> zip bytes between Generating and Uploading

    # ---- helpers -------------------------------------------------------------
    def _rtype(self, key):
        return self.store.registry.by_plural(key[1], key[0])

    @property
    def _step(self):
        return max(0.0, float(self.ctx.config.step_delay))

    @property
    def version(self):
        return self.ctx.config.longhorn_version

    def _modify_status(self, name, uid, mutate):
        def _apply(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(SYSTEM_BACKUPS[1], name, SYSTEM_BACKUPS[0])
            status = obj.setdefault("status", {})
            before = copy.deepcopy(status)
            mutate(status)
            if status != before:
                # handleStatusUpdate: lastSyncedAt moves with every status change.
                status["lastSyncedAt"] = now_rfc3339()
        return self.store.modify(self._rtype(SYSTEM_BACKUPS), LONGHORN_NAMESPACE, name, _apply, subresource="status",
                                 user="longhorn-manager")

    def _set_state(self, name, uid, state, **fields):
        def _mutate(status):
            status["state"] = state
            status.update(fields)
        try:
            return self._modify_status(name, uid, _mutate)
        except errors.NotFound:
            return None

    def _record_error(self, name, uid, reason, message):
        def _mutate(status):
            status["state"] = STATE_ERROR
            status["conditions"] = set_condition(status.get("conditions"), "Error", "True", reason, message)
        LOG.warning("system backup %s: %s", name, message)
        try:
            self._modify_status(name, uid, _mutate)
        except errors.NotFound:
            pass

    def _default_target(self):
        from .targets import get_backup_target  # pylint: disable=import-outside-toplevel
        return get_backup_target(self.store, DEFAULT_BACKUP_TARGET)

    def _backupstore(self, target):
        from .targets import backupstore_for_target  # pylint: disable=import-outside-toplevel
        return backupstore_for_target(self.ctx, target, probe=False)

    def _submit(self, uid, state, func, *args):
        """Run one phase in the pool unless it already runs for this object and state."""
        with self._lock:
            running = self._jobs.get(uid)
            if running is not None and running[0] == state and not running[1].done():
                return
            self._jobs[uid] = (state, self._pool.submit(func, *args))

    def _forget(self, uid):
        with self._lock:
            self._jobs.pop(uid, None)
            self._archives.pop(uid, None)

    # ---- reconcile -------------------------------------------------------------
    def reconcile(self, key):
        rtype = self._rtype(SYSTEM_BACKUPS)
        if rtype is None:
            return None
        name = key[3]
        obj = self.store.try_get(rtype, LONGHORN_NAMESPACE, name)
        if obj is None:
            return None
        uid = obj["metadata"]["uid"]
        status = obj.get("status") or {}
        state = status.get("state") or STATE_NONE
        if status.get("ownerID") != LAB_NODE:
            self._modify_status(name, uid, lambda s: s.update(ownerID=LAB_NODE))
            return 0.0
        if obj["metadata"].get("deletionTimestamp") and state != STATE_DELETING:
            self._set_state(name, uid, STATE_DELETING)
            return 0.0
        target = self._default_target()
        if target is None and state not in FINAL_STATES:
            self._record_error(name, uid, REASON_FAILED_STARTING, "failed to get backup target")
            return None
        if state == STATE_SYNCING:
            self._sync_from_target(obj, target)
        elif state == STATE_NONE:
            return self._start(obj, target)
        elif state == STATE_VOLUME_BACKUP:
            self._submit(uid, state, self._volume_backup_phase, obj)
        elif state == STATE_BACKING_IMAGE_BACKUP:
            self._submit(uid, state, self._backing_image_phase, obj)
        elif state == STATE_GENERATING:
            self._submit(uid, state, self._generate_phase, obj)
        elif state == STATE_UPLOADING:
            self._submit(uid, state, self._upload_phase, obj, target)
        elif state in (STATE_READY, STATE_ERROR):
            with self._lock:
                self._archives.pop(uid, None)
        elif state == STATE_DELETING:
            return self._delete(obj, target)
        return None

    def _start(self, obj, target):
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        labels = obj["metadata"].get("labels") or {}
        if labels.get(VERSION_LABEL):
            # ref §1.7: a backup found in the store is only synced.
            self._set_state(name, uid, STATE_SYNCING)
            return 0.0
        try:
            existing = [item for item in self._backupstore(target).list_system_backups() if item["name"] == name]
        except Exception as exc:  # pylint: disable=broad-except
            self._record_error(name, uid, REASON_START, "failed to list system backups in backup target: %s" % describe(exc))
            return None
        if existing:
            # The name is taken in the store: label the CR with its version, it is synced next.
            def _label(live):
                if live["metadata"].get("uid") != uid:
                    raise errors.NotFound(SYSTEM_BACKUPS[1], name, SYSTEM_BACKUPS[0])
                live["metadata"].setdefault("labels", {})
                live["metadata"]["labels"] = live["metadata"]["labels"] or {}
                live["metadata"]["labels"][VERSION_LABEL] = existing[0]["version"]
            self.store.modify(self._rtype(SYSTEM_BACKUPS), LONGHORN_NAMESPACE, name, _label, user="longhorn-manager")
            return None
        self._set_state(name, uid, STATE_VOLUME_BACKUP, version=self.version, gitCommit=git_commit(self.version))
        return None

    def _sync_from_target(self, obj, target):
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        version = (obj["metadata"].get("labels") or {}).get(VERSION_LABEL) or ""
        try:
            if not version:
                raise RuntimeError("failed to sync from backup target: missing %s label value" % VERSION_LABEL)
            cfg = self._backupstore(target).read_system_backup_cfg(version, name)
            if cfg is None:
                raise RuntimeError("system backup %s of version %s not found in backup target" % (name, version))
        except Exception as exc:  # pylint: disable=broad-except
            self._record_error(name, uid, REASON_SYNC, describe(exc))
            return
        fields = {"version": cfg.get("LonghornVersion", ""), "gitCommit": cfg.get("LonghornGitCommit", ""),
                  "managerImage": cfg.get("ManagerImage", "")}
        created_at = go_created_at_to_rfc3339(cfg.get("CreatedAt"))
        if created_at:
            fields["createdAt"] = created_at
        self._set_state(name, uid, STATE_READY, **fields)

    def _delete(self, obj, target):
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        self._forget(uid)
        self._cleanup_remote(obj, target)

        def _drop(live):
            if live["metadata"].get("uid") != uid:
                raise errors.NotFound(SYSTEM_BACKUPS[1], name, SYSTEM_BACKUPS[0])
            live["metadata"]["finalizers"] = [f for f in live["metadata"].get("finalizers") or [] if f != LONGHORN_FINALIZER]
        try:
            self.store.modify(self._rtype(SYSTEM_BACKUPS), LONGHORN_NAMESPACE, name, _drop, user="longhorn-manager")
        except errors.NotFound:
            pass
        return None

    def _cleanup_remote(self, obj, target):
        """cleanupRemoteSystemBackupFiles: remote data goes unless CR-only or the target is unavailable (ref §1.3)."""
        name = obj["metadata"]["name"]
        version = (obj.get("status") or {}).get("version") or ""
        if not version:
            return
        if (obj["metadata"].get("labels") or {}).get(DELETE_CR_ONLY_LABEL) is not None:
            return
        spec, status = (target or {}).get("spec") or {}, (target or {}).get("status") or {}
        if target is None or target["metadata"].get("deletionTimestamp") or not spec.get("backupTargetURL") or not status.get("available"):
            return
        try:
            store = self._backupstore(target)
            if any(item["name"] == name for item in store.list_system_backups()):
                store.delete_system_backup(version, name)
        except Exception as exc:  # pylint: disable=broad-except
            LOG.warning("system backup %s: failed to delete it in the backup target: %s", name, describe(exc))

    # ---- phases (worker threads) ----------------------------------------------
    def _still_current(self, name, uid):
        obj = self.store.try_get(self._rtype(SYSTEM_BACKUPS), LONGHORN_NAMESPACE, name)
        return obj is not None and obj["metadata"]["uid"] == uid and not obj["metadata"].get("deletionTimestamp")

    def _run_phase(self, obj, work, next_state, error_reason):
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        if self._step:
            time.sleep(self._step)
        try:
            fields = work(obj) or {}
        except PhaseError as exc:
            if self._still_current(name, uid):
                self._record_error(name, uid, exc.reason, exc.message)
            return
        except Exception as exc:  # pylint: disable=broad-except
            LOG.exception("system backup %s: phase failed", name)
            if self._still_current(name, uid):
                self._record_error(name, uid, error_reason, describe(exc))
            return
        if self._still_current(name, uid):
            self._set_state(name, uid, next_state, **fields)

    def _volume_backup_phase(self, obj):
        self._run_phase(obj, self._backup_volumes, STATE_BACKING_IMAGE_BACKUP, REASON_START)

    def _backing_image_phase(self, obj):
        # The lab has no backing images (and v2 backing images are never backed up, ref §2).
        self._run_phase(obj, lambda _obj: None, STATE_GENERATING, REASON_START)

    def _generate_phase(self, obj):
        def _work(live):
            archive = self.build_archive(live)
            with self._lock:
                self._archives[live["metadata"]["uid"]] = archive
        self._run_phase(obj, _work, STATE_UPLOADING, REASON_GENERATE)

    def _upload_phase(self, obj, target):
        self._run_phase(obj, lambda live: self._upload(live, target), STATE_READY, REASON_UPLOAD)

    # ---- volume backups (ref §1.6, §1.7) -----------------------------------------
    def _backup_volumes(self, obj):
        policy = (obj.get("spec") or {}).get("volumeBackupPolicy") or POLICY_IF_NOT_PRESENT
        if policy not in (POLICY_ALWAYS, POLICY_IF_NOT_PRESENT):
            return None
        volumes = self.store.list(self._rtype(VOLUMES), LONGHORN_NAMESPACE)[0]
        backups = {}
        for volume in volumes:
            if (volume.get("status") or {}).get("isStandby"):
                continue
            if (volume.get("spec") or {}).get("cloneMode") == "linked-clone":
                continue
            if not self._still_current(obj["metadata"]["name"], obj["metadata"]["uid"]):
                return None
            snapshot = self._create_snapshot(volume, generate_name("system-backup"))
            if policy == POLICY_IF_NOT_PRESENT and self._backup_up_to_date(volume, snapshot):
                continue
            backup = self._create_backup(volume, snapshot)
            backups[backup["metadata"]["name"]] = volume["metadata"]["name"]
        self._wait_for_backups(obj, backups)
        return None

    def _create_snapshot(self, volume, snapshot_name):
        volume_name = volume["metadata"]["name"]
        rtype = self._rtype(SNAPSHOTS)
        try:
            self.store.create(rtype, {
                "metadata": {"name": snapshot_name, "namespace": LONGHORN_NAMESPACE, "labels": {"longhornvolume": volume_name}},
                "spec": {"volume": volume_name, "createSnapshot": True},
            }, user="longhorn-manager")
        except errors.ApiError as exc:
            raise PhaseError(REASON_START, "failed to create Volume %s snapshot %s: %s" % (volume_name, snapshot_name, exc.message)) from None
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        while time.monotonic() < deadline:
            snapshot = self.store.try_get(rtype, LONGHORN_NAMESPACE, snapshot_name)
            if snapshot is None:
                raise PhaseError(REASON_START, 'snapshots.longhorn.io "%s" not found' % snapshot_name)
            if (snapshot.get("status") or {}).get("readyToUse"):
                return snapshot
            time.sleep(POLL_INTERVAL)
        raise PhaseError(REASON_START, "timeout taking volume snapshot for system backup")

    def _backup_up_to_date(self, volume, snapshot):
        """isVolumeBackupUpToDate; in the lab "nothing new" = the snapshot image equals the last backup's (ref §1.7)."""
        volume_name = volume["metadata"]["name"]
        last_backup_name = (volume.get("status") or {}).get("lastBackup") or ""
        if not last_backup_name:
            return False
        last_backup = self.store.try_get(self._rtype(BACKUPS), LONGHORN_NAMESPACE, last_backup_name)
        if last_backup is None:
            return False
        last_snapshot = (last_backup.get("status") or {}).get("snapshotName") or ""
        if not last_snapshot or self.store.try_get(self._rtype(SNAPSHOTS), LONGHORN_NAMESPACE, last_snapshot) is None:
            return False
        try:
            return lh_snapshots.read(self.ctx, volume_name, snapshot["metadata"]["name"]) == lh_snapshots.read(self.ctx, volume_name, last_snapshot)
        except lh_snapshots.SnapshotMissing:
            return False

    def _create_backup(self, volume, snapshot):
        """createVolumeBackupFromSnapshot: the Backup goes to the volume's own target (ref §1.7)."""
        volume_name = volume["metadata"]["name"]
        name = snapshot["metadata"]["name"]
        target_name = (volume.get("spec") or {}).get("backupTargetName") or DEFAULT_BACKUP_TARGET
        try:
            return self.store.create(self._rtype(BACKUPS), {
                "metadata": {"name": name, "namespace": LONGHORN_NAMESPACE,
                             "labels": {"backup-target": target_name, "backup-volume": volume_name}},
                "spec": {"snapshotName": name},
            }, user="longhorn-manager")
        except errors.ApiError as exc:
            raise PhaseError(REASON_START, "failed to create Volume %s backup %s: %s" % (volume_name, name, exc.message)) from None

    def _wait_for_backups(self, obj, backups):
        """WaitForVolumeBackupToComplete: Completed and recorded as the volume's lastBackup; any Error fails."""
        pending = dict(backups)
        deadline = time.monotonic() + VOLUME_BACKUP_TIMEOUT
        while pending:
            if not self._still_current(obj["metadata"]["name"], obj["metadata"]["uid"]):
                return
            for backup_name, volume_name in list(pending.items()):
                backup = self.store.try_get(self._rtype(BACKUPS), LONGHORN_NAMESPACE, backup_name)
                if backup is None:
                    continue
                status = backup.get("status") or {}
                if status.get("state") == "Completed":
                    volume = self.store.try_get(self._rtype(VOLUMES), LONGHORN_NAMESPACE, volume_name)
                    if volume is not None and (volume.get("status") or {}).get("lastBackup") == backup_name:
                        del pending[backup_name]
                elif status.get("state") == "Error":
                    raise PhaseError(REASON_START, "failed creating Volume backup %s: %s" % (backup_name, status.get("error", "")))
            if not pending:
                break
            if time.monotonic() > deadline:
                raise PhaseError(REASON_START, "timed out waiting for Volume backups to complete")
            time.sleep(POLL_INTERVAL)

    # ---- archive (ref §2) --------------------------------------------------------
    def _list(self, plural, group="", namespace=None):
        rtype = self.store.registry.by_plural(plural, group)
        if rtype is None:
            return []
        return self.store.list(rtype, namespace)[0]

    def _collect(self, source):
        """The objects of one archive file, filtered as the datastore's GetAll* functions do."""
        ns = LONGHORN_NAMESPACE
        if source == "crds":
            return [c for c in self._list("customresourcedefinitions", "apiextensions.k8s.io") if (c.get("spec") or {}).get("group") == "longhorn.io"]
        if source in ("serviceaccounts", "configmaps"):
            return self._list(source, "", ns)
        if source in ("daemonsets", "deployments"):
            return self._list(source, "apps", ns)
        if source in ("roles", "rolebindings"):
            return self._list(source, "rbac.authorization.k8s.io", ns)
        if source in ("clusterroles", "clusterrolebindings"):
            return self._cluster_rbac(source)
        if source == "services":
            services = self._list("services", "", ns)
            for service in services:
                spec = service.setdefault("spec", {})
                if spec.get("clusterIP"):
                    spec["clusterIP"] = ""
                spec.pop("clusterIPs", None)
            return services
        if source == "storageclasses":
            return [sc for sc in self._list("storageclasses", "storage.k8s.io") if sc.get("provisioner") == LONGHORN_DRIVER]
        if source == "persistentvolumes":
            return self._longhorn_pvs()
        if source == "persistentvolumeclaims":
            classes = {(pv.get("spec") or {}).get("storageClassName", "") for pv in self._longhorn_pvs()}
            claims = []
            for pvc in self._list("persistentvolumeclaims", ""):
                class_name = (pvc.get("spec") or {}).get("storageClassName")
                # ref §2: a PVC with a nil storageClassName is left out.
                if class_name is not None and class_name in classes:
                    claims.append(pvc)
            return claims
        return self._list(source, "longhorn.io", ns)

    def _longhorn_pvs(self):
        return [pv for pv in self._list("persistentvolumes", "")
                if ((pv.get("spec") or {}).get("csi") or {}).get("driver") == LONGHORN_DRIVER]

    def _cluster_rbac(self, source):
        """ClusterRoleBindings naming a Longhorn ServiceAccount, and the ClusterRoles they reference."""
        accounts = {(sa["metadata"].get("namespace"), sa["metadata"]["name"]) for sa in self._list("serviceaccounts", "", LONGHORN_NAMESPACE)}
        bindings = [b for b in self._list("clusterrolebindings", "rbac.authorization.k8s.io")
                    if any(s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) in accounts for s in b.get("subjects") or [])]
        if source == "clusterrolebindings":
            return bindings
        names = {(b.get("roleRef") or {}).get("name") for b in bindings}
        return [r for r in self._list("clusterroles", "rbac.authorization.k8s.io") if r["metadata"]["name"] in names]

    def _metadata_yaml(self):
        namespace = self.store.try_get("namespaces", "", LONGHORN_NAMESPACE) or {"metadata": {}}
        node = self.store.try_get("nodes", "", "lab-node-1") or {}
        kube_version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or DEFAULT_KUBERNETES_VERSION
        # ref §2 names the keys after the struct's json tags, but util.EncodeToYAMLFile uses gopkg.in/yaml.v2,
        # which ignores json tags and lowercases the Go field names (lm@v1.10.2:util/util.go). The creation time
        # is still zero while Generating, so it is Go's zero time.
        lines = [
            ("longhornversion", self.version),
            ("longhorngitcommit", git_commit(self.version)),
            ("kubernetesversion", kube_version),
            ("longhornnamespaceuuid", namespace["metadata"].get("uid", "")),
            ("systembackupcreatedat", "0001-01-01T00:00:00Z"),
            ("managerimage", lh_settings.manager_image(self.version)),
        ]
        return "".join(yaml.safe_dump({key: value}, default_flow_style=False) for key, value in lines)

    def build_archive(self, obj):
        """The zip of ref §2: ``<name>/metadata.yaml`` and ``<name>/yamls/<group>/<file>.yaml``, one *List each."""
        name = obj["metadata"]["name"]
        buffer = io.BytesIO()
        # The lists' resourceVersion, as a List the manager's client returns carries it.
        resource_version = self.store.list("namespaces")[1]
        stamp = datetime.datetime.now(datetime.timezone.utc).timetuple()[:6]
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for directory in (name + "/", name + "/yamls/", name + "/yamls/apiextensions/", name + "/yamls/kubernetes/",
                              name + "/yamls/longhorn/"):
                archive.writestr(zipfile.ZipInfo(directory, date_time=stamp), b"")
            archive.writestr(zipfile.ZipInfo(name + "/metadata.yaml", date_time=stamp), self._metadata_yaml())
            for directory, file_name, list_kind, api_version, source in ARCHIVE_FILES:
                items = []
                for item in self._collect(source):
                    if not api_version.startswith("longhorn.io/"):
                        # Typed clients return built-in list items without apiVersion/kind.
                        item.pop("apiVersion", None)
                        item.pop("kind", None)
                    items.append(item)
                document = {"apiVersion": api_version, "items": items, "kind": list_kind,
                            "metadata": {"resourceVersion": resource_version}}
                info = zipfile.ZipInfo("%s/yamls/%s/%s.yaml" % (name, directory, file_name), date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, yaml.safe_dump(document, default_flow_style=False, sort_keys=True))
        return buffer.getvalue()

    def _upload(self, obj, target):
        """UploadSystemBackup: to ``system-backups/<version>/<name>/`` of the default target (ref §1.7, §3.3)."""
        from .backupstore import go_time_nano  # pylint: disable=import-outside-toplevel
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        version = (obj.get("status") or {}).get("version") or self.version
        with self._lock:
            archive = self._archives.get(uid)
        if archive is None:
            # The archive lives in memory only (upstream: /tmp); rebuild it after a restart.
            archive = self.build_archive(obj)
        engine_image = lh_settings.get_setting(self.store, lh_settings.DEFAULT_ENGINE_IMAGE) or lh_settings.engine_image(self.version)
        deadline = time.monotonic() + UPLOAD_TIMEOUT
        last_error = None
        while True:
            try:
                store = self._backupstore(target)
                if store.read_system_backup_cfg(version, name) is None:
                    store.write_system_backup(version, name, archive, manager_image=lh_settings.manager_image(self.version),
                                              engine_image=engine_image, git_commit=(obj.get("status") or {}).get("gitCommit", ""),
                                              target_url=(target.get("spec") or {}).get("backupTargetURL", ""),
                                              created_at=go_time_nano())
                break
            except Exception as exc:  # pylint: disable=broad-except
                last_error = describe(exc)
                LOG.warning("system backup %s: failed to upload: %s", name, last_error)
            if time.monotonic() > deadline:
                raise PhaseError(REASON_UPLOAD, "timeout uploading system backup: %s" % last_error)
            time.sleep(max(POLL_INTERVAL, 1.0 if self._step >= 1.0 else 0.2))
        with self._lock:
            self._archives.pop(uid, None)
        return {"managerImage": lh_settings.manager_image(self.version), "createdAt": now_rfc3339()}


def describe(exc):
    """An exception as one line without secrets (botocore messages carry no keys)."""
    from .targets import TargetUnavailable, describe_s3_error  # pylint: disable=import-outside-toplevel
    if isinstance(exc, TargetUnavailable):
        return exc.message
    if isinstance(exc, errors.ApiError):
        return exc.message
    if getattr(exc, "response", None) is not None:
        return describe_s3_error(getattr(exc, "operation_name", "S3"), exc)
    return str(exc)


CONTROLLERS = [SystemBackupController]
