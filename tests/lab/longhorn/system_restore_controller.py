# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The SystemRestore controller and the system rollout of the emulator (ref §1.8, §2).

Modelled on ``lm@v1.10.2:controller/system_restore_controller.go`` (creates the rollout Job)
and ``controller/system_rollout_controller.go`` (what the Job's ``longhorn-manager system-rollout``
does). The lab has no container runtime, so the rollout runs in a thread of the lab and the
Job object is completed when it ends.
"""

from __future__ import annotations

import copy
import io
import logging
import threading
import time
import urllib.parse
import zipfile

import yaml

from ..context import LONGHORN_NAMESPACE
from ..controllers.runtime import Controller
from .. import api_errors as errors
from . import settings as lh_settings
from .attachments import LAB_NODE
from .system_backup_controller import describe
from .volume_controller import COND_RESTORE, get_condition, now_rfc3339, set_condition

LOG = logging.getLogger("lab.longhorn.systemrestore")

SYSTEM_RESTORES = ("longhorn.io", "systemrestores")
SYSTEM_BACKUPS = ("longhorn.io", "systembackups")

STATE_NONE = ""
STATE_PENDING = "Pending"
STATE_INITIALIZING = "Initializing"
STATE_DOWNLOADING = "Downloading"
STATE_UNPACKING = "Unpacking"
STATE_RESTORING = "Restoring"
STATE_COMPLETED = "Completed"
STATE_ERROR = "Error"
STATE_DELETING = "Deleting"

REASON_RESTORE = "Restore"
REASON_UNPACK = "Unpack"
MESSAGE_FAILED = "failed to restore Longhorn system"
MESSAGE_UNPACK_FAILED = "failed to unpack system backup from file"

SYSTEM_RESTORE_LABEL = "longhorn.io/system-restore"
IN_PROGRESS = "InProgress"
LONGHORN_FINALIZER = "longhorn.io"
ROLLOUT_PREFIX = "longhorn-system-rollout-"
DEFAULT_SERVICE_ACCOUNT = "longhorn-service-account"
ENGINE_BINARY_DIRECTORY = "/var/lib/longhorn/engine-binaries/"
JOB_BACKOFF_LIMIT = 3

ANNOTATION_RESTORED = "longhorn.io/last-system-restored"
ANNOTATION_RESTORED_AT = "longhorn.io/last-system-restored-at"
ANNOTATION_SKIPPED = "longhorn.io/last-skipped-system-restored"
ANNOTATION_SKIPPED_AT = "longhorn.io/last-skipped-system-restored-at"
ANNOTATION_RESTORED_BACKUP = "longhorn.io/last-system-restored-backup"
# Lets longhorn-manager itself update read-only settings (types.UpdateSettingFromLonghorn).
UPDATE_FROM_LONGHORN = "longhorn.io/update-setting-from-longhorn"

# ref §2: settings that persist through a restore (systemRolloutIgnoredSettings).
IGNORED_SETTINGS = (
    "concurrent-volume-backup-restore-per-node-limit",
    "concurrent-replica-rebuild-per-node-limit",
    "concurrent-backing-image-replenish-per-node-limit",
    "backup-target",
    "backup-target-credential-secret",
)
# ConfigMap the rollout never restores (types.DefaultDefaultSettingConfigMapName).
IGNORED_CONFIGMAP = "longhorn-default-setting"

# Upstream retries each kind every second for 24 h (datastore.SystemRestoreTimeout). The lab gives up
# after this many seconds without progress; time spent waiting on volumes that are restoring data
# does not count, so large restores are not cut short while a failed one errors out quickly.
KIND_RESTORE_TIMEOUT = 30.0
RETRY_INTERVAL = 0.1

# Kinds in the archive and where they live: listKind -> (group, plural, namespaced in the Longhorn namespace).
LIST_KINDS = {
    "CustomResourceDefinitionList": ("apiextensions.k8s.io", "customresourcedefinitions"),
    "ServiceAccountList": ("", "serviceaccounts"),
    "ClusterRoleList": ("rbac.authorization.k8s.io", "clusterroles"),
    "ClusterRoleBindingList": ("rbac.authorization.k8s.io", "clusterrolebindings"),
    "RoleList": ("rbac.authorization.k8s.io", "roles"),
    "RoleBindingList": ("rbac.authorization.k8s.io", "rolebindings"),
    "DaemonSetList": ("apps", "daemonsets"),
    "DeploymentList": ("apps", "deployments"),
    "ConfigMapList": ("", "configmaps"),
    "ServiceList": ("", "services"),
    "StorageClassList": ("storage.k8s.io", "storageclasses"),
    "PersistentVolumeList": ("", "persistentvolumes"),
    "PersistentVolumeClaimList": ("", "persistentvolumeclaims"),
    "SettingList": ("longhorn.io", "settings"),
    "EngineImageList": ("longhorn.io", "engineimages"),
    "VolumeList": ("longhorn.io", "volumes"),
    "RecurringJobList": ("longhorn.io", "recurringjobs"),
    "BackingImageList": ("longhorn.io", "backingimages"),
    "BackupTargetList": ("longhorn.io", "backuptargets"),
}


class RolloutError(Exception):
    """One attempt at restoring a kind failed; it is retried."""


class RolloutAborted(Exception):
    """The SystemRestore is gone or being deleted."""


def rollout_name(restore_name):
    return ROLLOUT_PREFIX + restore_name


def system_backup_uri(name, version):
    return "backupstore/system-backups/%s/%s" % (version, name)


def system_backup_url(name, version, target_url):
    """systembackupstore.GetSystemBackupURL: the target URL with the system backup path joined in."""
    parts = urllib.parse.urlsplit(target_url)
    path = "/".join(p for p in (parts.path.strip("/"), system_backup_uri(name, version)) if p)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + path, parts.query, parts.fragment))


class SystemRestoreController(Controller):
    """ref §1.8: creates the rollout Job and runs the rollout for each SystemRestore."""

    name = "longhorn-system-restore"
    watches = (SYSTEM_RESTORES,)

    def __init__(self, ctx):
        super().__init__(ctx)
        self._lock = threading.Lock()
        self._rollouts = {}     # uid -> Thread

    def _rtype(self, key):
        return self.store.registry.by_plural(key[1], key[0])

    def _modify_status(self, name, uid, mutate):
        def _apply(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(SYSTEM_RESTORES[1], name, SYSTEM_RESTORES[0])
            mutate(obj.setdefault("status", {}))
        return self.store.modify(self._rtype(SYSTEM_RESTORES), LONGHORN_NAMESPACE, name, _apply, subresource="status",
                                 user="longhorn-manager")

    def _modify_meta(self, name, uid, mutate):
        def _apply(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(SYSTEM_RESTORES[1], name, SYSTEM_RESTORES[0])
            mutate(obj["metadata"])
        return self.store.modify(self._rtype(SYSTEM_RESTORES), LONGHORN_NAMESPACE, name, _apply, user="longhorn-manager")

    def record_error(self, name, uid, reason, message):
        def _mutate(status):
            status["state"] = STATE_ERROR
            status["conditions"] = set_condition(status.get("conditions"), "Error", "True", reason, message)
        LOG.warning("system restore %s: %s", name, message)
        self._modify_status(name, uid, _mutate)

    def set_state(self, name, uid, state, **fields):
        def _mutate(status):
            status["state"] = state
            status.update(fields)
        return self._modify_status(name, uid, _mutate)

    def remove_in_progress_label(self, name, uid):
        def _mutate(meta):
            labels = meta.get("labels") or {}
            labels.pop(SYSTEM_RESTORE_LABEL, None)
            meta["labels"] = labels
        try:
            self._modify_meta(name, uid, _mutate)
        except errors.NotFound:
            pass

    # ---- reconcile -------------------------------------------------------------
    def reconcile(self, key):
        rtype = self._rtype(SYSTEM_RESTORES)
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
        if obj["metadata"].get("deletionTimestamp"):
            return self._cleanup(obj, state)
        if state in (STATE_COMPLETED, STATE_ERROR):
            if (obj["metadata"].get("labels") or {}).get(SYSTEM_RESTORE_LABEL):
                self.remove_in_progress_label(name, uid)
            return None
        if state == STATE_NONE:
            return self._create_job(obj)
        self._ensure_rollout(obj)
        return None

    def _cleanup(self, obj, state):
        """Deleting a SystemRestore kills its Job (restore-longhorn-system.md: delete it to restart a restore)."""
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        if state != STATE_DELETING:
            self.set_state(name, uid, STATE_DELETING)
            return 0.0
        try:
            self.store.delete("jobs", LONGHORN_NAMESPACE, rollout_name(name), user="longhorn-manager")
        except errors.NotFound:
            pass
        if LONGHORN_FINALIZER in (obj["metadata"].get("finalizers") or []):
            def _drop(meta):
                meta["finalizers"] = [f for f in meta.get("finalizers") or [] if f != LONGHORN_FINALIZER]
            try:
                self._modify_meta(name, uid, _drop)
            except errors.NotFound:
                pass
        return None

    def _create_job(self, obj):
        """CreateSystemRestoreJob: the manager image comes from the system backup cfg (ref §1.8)."""
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        job_name = rollout_name(name)
        if self.store.try_get("jobs", LONGHORN_NAMESPACE, job_name) is None:
            try:
                self.store.create("jobs", self._job(obj, self._manager_image(obj)), user="longhorn-manager")
            except errors.AlreadyExists:
                pass
            except Exception as exc:  # pylint: disable=broad-except
                self.record_error(name, uid, "FailedCreating: Job for %s" % name, "failed to create system restore Job: %s" % describe(exc))
                return None
        self.set_state(name, uid, STATE_PENDING)
        return None

    def _manager_image(self, obj):
        from .targets import backupstore_for_target, get_backup_target  # pylint: disable=import-outside-toplevel
        backup_name = (obj.get("spec") or {}).get("systemBackup") or ""
        system_backup = self.store.get(self._rtype(SYSTEM_BACKUPS), LONGHORN_NAMESPACE, backup_name)
        version = (system_backup.get("status") or {}).get("version") or ""
        target = get_backup_target(self.store, "default")
        if target is None:
            raise errors.NotFound("backuptargets", "default", "longhorn.io")
        cfg = backupstore_for_target(self.ctx, target, probe=False).read_system_backup_cfg(version, backup_name)
        if cfg is None:
            raise RuntimeError("system backup %s of version %s not found in backup target" % (backup_name, version))
        return cfg.get("ManagerImage", "")

    def _job(self, obj, manager_image):
        name = obj["metadata"]["name"]
        job_name = rollout_name(name)
        tolerations = []
        value = lh_settings.get_setting(self.store, "taint-toleration") or ""
        for item in (v.strip() for v in value.split(";") if v.strip()):
            key_value, _sep, effect = item.partition(":")
            key, _eq, val = key_value.partition("=")
            toleration = {"key": key, "operator": "Equal" if val else "Exists", "effect": effect}
            if val:
                toleration["value"] = val
            tolerations.append(toleration)
        return {
            "metadata": {"name": job_name, "namespace": LONGHORN_NAMESPACE,
                         "ownerReferences": [{"apiVersion": "longhorn.io/v1beta2", "kind": "SystemRestore", "name": name,
                                              "uid": obj["metadata"]["uid"]}]},
            "spec": {
                "backoffLimit": JOB_BACKOFF_LIMIT,
                "template": {
                    "metadata": {"name": name},
                    "spec": {
                        "serviceAccountName": self._service_account(),
                        "containers": [{
                            "name": job_name,
                            "image": manager_image,
                            "command": ["longhorn-manager", "system-rollout", name],
                            "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                    {"name": "NODE_NAME", "value": LAB_NODE}],
                            "volumeMounts": [{"name": "engine", "mountPath": ENGINE_BINARY_DIRECTORY}],
                            "securityContext": {"privileged": True},
                        }],
                        "volumes": [{"name": "engine", "hostPath": {"path": ENGINE_BINARY_DIRECTORY}}],
                        "restartPolicy": "OnFailure",
                        "nodeSelector": {"kubernetes.io/hostname": LAB_NODE},
                        "tolerations": tolerations,
                    },
                },
            },
        }

    def _service_account(self):
        # getLonghornServiceAccountName takes it from a manager pod; the lab may run none.
        pods = self.store.list("pods", LONGHORN_NAMESPACE, label_selector="app=longhorn-manager")[0]
        for pod in pods:
            account = (pod.get("spec") or {}).get("serviceAccountName")
            if account:
                return account
        return DEFAULT_SERVICE_ACCOUNT

    def _ensure_rollout(self, obj):
        uid = obj["metadata"]["uid"]
        with self._lock:
            thread = self._rollouts.get(uid)
            if thread is not None and thread.is_alive():
                return
            rollout = SystemRollout(self, obj["metadata"]["name"], uid)
            thread = threading.Thread(target=rollout.run, name="lab-system-rollout-%s" % obj["metadata"]["name"], daemon=True)
            self._rollouts[uid] = thread
            thread.start()

    def complete_job(self, name):
        """The rollout pod exits: the Job succeeds."""
        def _mutate(job):
            status = job.setdefault("status", {})
            now = now_rfc3339()
            status.update({"active": 0, "succeeded": 1, "completionTime": now})
            status.setdefault("startTime", now)
            status["conditions"] = [{"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now, "lastTransitionTime": now},
                                    {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]
        try:
            self.store.modify("jobs", LONGHORN_NAMESPACE, rollout_name(name), _mutate, subresource="status", user="job-controller")
        except errors.NotFound:
            pass

    def start_job(self, name):
        def _mutate(job):
            status = job.setdefault("status", {})
            if not status.get("startTime"):
                status.update({"startTime": now_rfc3339(), "active": 1})
        try:
            self.store.modify("jobs", LONGHORN_NAMESPACE, rollout_name(name), _mutate, subresource="status", user="job-controller")
        except errors.NotFound:
            pass


class SystemRollout:
    """What ``longhorn-manager system-rollout <name>`` does, in one thread (system_rollout_controller.go)."""

    def __init__(self, controller, name, uid):
        self.controller = controller
        self.ctx = controller.ctx
        self.store = controller.store
        self.name = name
        self.uid = uid
        self.restored_at = now_rfc3339()
        self.restored_url = ""
        self.target_url = ""
        self.version = ""
        self.backupstore = None
        self.zip_bytes = None
        self.lists = {}
        self.errors = []
        # In-memory marks of items already handled in this rollout (isResourceHasCurrentRolloutAnnotation).
        self.done_items = set()

    # ---- plumbing ------------------------------------------------------------
    @property
    def step(self):
        return max(0.0, float(self.ctx.config.step_delay))

    def _restore_obj(self):
        obj = self.store.try_get(self.controller._rtype(SYSTEM_RESTORES), LONGHORN_NAMESPACE, self.name)  # pylint: disable=protected-access
        if obj is None or obj["metadata"]["uid"] != self.uid or obj["metadata"].get("deletionTimestamp"):
            raise RolloutAborted()
        return obj

    def _sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)
        self._restore_obj()

    def run(self):
        try:
            self._run()
        except RolloutAborted:
            return
        except Exception:  # pylint: disable=broad-except
            LOG.exception("system rollout %s crashed", self.name)

    def _run(self):
        self.controller.start_job(self.name)
        while True:
            obj = self._restore_obj()
            state = (obj.get("status") or {}).get("state") or STATE_NONE
            if state in (STATE_COMPLETED, STATE_ERROR):
                self.controller.remove_in_progress_label(self.name, self.uid)
                self.controller.complete_job(self.name)
                return
            try:
                self._sync_controller(obj)
            except RolloutAborted:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                # syncController errors are retried by the work queue (e.g. engine image not deployed yet, #7158).
                LOG.warning("system rollout %s: %s", self.name, describe(exc))
                self._sleep(1.0)
                continue
            self._step_state(state)

    def _fail(self, reason, message, detail):
        self.controller.record_error(self.name, self.uid, reason, "%s: %s" % (message, detail))

    def _step_state(self, state):
        if state in (STATE_PENDING, STATE_INITIALIZING):
            try:
                source_url = self._source_url()
            except Exception as exc:  # pylint: disable=broad-except
                self._fail(REASON_RESTORE, MESSAGE_FAILED, describe(exc))
                return

            def _label(meta):
                meta["labels"] = dict(meta.get("labels") or {}, **{SYSTEM_RESTORE_LABEL: IN_PROGRESS})
            self.controller._modify_meta(self.name, self.uid, _label)  # pylint: disable=protected-access
            self.controller.set_state(self.name, self.uid, STATE_INITIALIZING, sourceURL=source_url, ownerID=LAB_NODE)
            self._sleep(self.step)
            self.controller.set_state(self.name, self.uid, STATE_DOWNLOADING)
        elif state == STATE_DOWNLOADING:
            self._sleep(self.step)
            try:
                self.zip_bytes = self.backupstore.read_system_backup_zip(self.version, self._backup_name())
            except Exception as exc:  # pylint: disable=broad-except
                self._fail(REASON_RESTORE, MESSAGE_FAILED, describe(exc))
                return
            self.controller.set_state(self.name, self.uid, STATE_UNPACKING)
        elif state == STATE_UNPACKING:
            self._sleep(self.step)
            try:
                if self.zip_bytes is None:
                    self.zip_bytes = self.backupstore.read_system_backup_zip(self.version, self._backup_name())
                self._unpack()
            except Exception as exc:  # pylint: disable=broad-except
                self._fail(REASON_UNPACK, MESSAGE_UNPACK_FAILED, describe(exc))
                return
            self.controller.set_state(self.name, self.uid, STATE_RESTORING)
        elif state == STATE_RESTORING:
            if not self.lists:
                try:
                    if self.zip_bytes is None:
                        self.zip_bytes = self.backupstore.read_system_backup_zip(self.version, self._backup_name())
                    self._unpack()
                except Exception as exc:  # pylint: disable=broad-except
                    self._fail(REASON_UNPACK, MESSAGE_UNPACK_FAILED, describe(exc))
                    return
            self._restore_all()
            if self.errors:
                self._fail(REASON_RESTORE, MESSAGE_FAILED, "; ".join(self.errors))
            else:
                self.controller.set_state(self.name, self.uid, STATE_COMPLETED)
        else:
            self._sleep(RETRY_INTERVAL)

    def _backup_name(self):
        return (self._restore_obj().get("spec") or {}).get("systemBackup") or ""

    def _sync_controller(self, obj):
        """syncController: the SystemBackup's version, the default target, the engine image of the backup."""
        from .targets import backupstore_for_target, get_backup_target  # pylint: disable=import-outside-toplevel
        backup_name = (obj.get("spec") or {}).get("systemBackup") or ""
        system_backup = self.store.try_get(self.controller._rtype(SYSTEM_BACKUPS), LONGHORN_NAMESPACE, backup_name)  # pylint: disable=protected-access
        if system_backup is None:
            raise RuntimeError("failed to get SystemBackup %s: systembackup.longhorn.io \"%s\" not found" % (backup_name, backup_name))
        self.version = (system_backup.get("status") or {}).get("version") or ""
        if self.version != self.ctx.config.longhorn_version:
            LOG.warning("system rollout %s: restoring Longhorn %s to a different version %s", self.name, self.ctx.config.longhorn_version,
                        self.version)
        target = get_backup_target(self.store, "default")
        if target is None:
            raise RuntimeError('backuptarget.longhorn.io "default" not found')
        self.backupstore = backupstore_for_target(self.ctx, target, probe=False)
        self.target_url = (target.get("spec") or {}).get("backupTargetURL") or ""
        cfg = self.backupstore.read_system_backup_cfg(self.version, backup_name)
        if cfg is None:
            raise RuntimeError("failed to get system backup config %s of version %s" % (backup_name, self.version))
        self.restored_url = system_backup_url(backup_name, self.version, self.target_url)
        self._ensure_engine_image(cfg.get("EngineImage") or "")

    def _ensure_engine_image(self, image):
        """ref §2: the engine image of the backup must exist and be deployed before anything is restored."""
        import hashlib  # pylint: disable=import-outside-toplevel
        rtype = self.store.registry.by_plural("engineimages", "longhorn.io")
        for engine_image in self.store.list(rtype, LONGHORN_NAMESPACE)[0]:
            if (engine_image.get("spec") or {}).get("image") == image:
                if (engine_image.get("status") or {}).get("state") != "deployed":
                    raise RuntimeError("engine image %s not deployed yet" % engine_image["metadata"]["name"])
                return
        name = "ei-" + hashlib.sha512(image.encode()).hexdigest()[:8]
        self.store.create(rtype, {"metadata": {"name": name, "namespace": LONGHORN_NAMESPACE, "labels": {"longhorn.io/component": "engine-image"},
                                               "annotations": self._annotations({}, skipped=False)},
                                  "spec": {"image": image}}, user="longhorn-manager")
        raise RuntimeError("engine image %s not deployed yet" % name)

    def _source_url(self):
        """GetSystemBackupURL of the rollout: the target URL followed by the store path of the backup."""
        name = self._backup_name()
        for item in self.backupstore.list_system_backups():
            if item["name"] == name and item["version"] == self.version:
                return self.target_url + system_backup_uri(name, self.version)
        raise RuntimeError("failed to find system backup %s of version %s in the backup target" % (name, self.version))

    def _unpack(self):
        """Decode every yamls/*/*.yaml by its kind, as the rollout does (ref §2: file names do not matter)."""
        lists = {}
        with zipfile.ZipFile(io.BytesIO(self.zip_bytes)) as archive:
            for info in archive.infolist():
                parts = info.filename.split("/")
                if info.is_dir() or len(parts) != 4 or parts[1] != "yamls" or not parts[3].endswith(".yaml"):
                    continue
                document = yaml.safe_load(archive.read(info))
                if not isinstance(document, dict) or document.get("kind") not in LIST_KINDS:
                    LOG.warning("system rollout %s: unknown resource kind in %s", self.name, info.filename)
                    continue
                lists[document["kind"]] = list(document.get("items") or [])
        self.lists = lists

    # ---- restore (ref §2 "Restore behaviour") -------------------------------------
    def _restore_all(self):
        order = [
            ["CustomResourceDefinitionList"], ["DaemonSetList"], ["EngineImageList"], ["SettingList"],
            # Upstream runs this group in parallel; the kinds do not depend on each other.
            ["ServiceList", "ServiceAccountList", "ClusterRoleList", "ClusterRoleBindingList", "RoleList", "RoleBindingList",
             "StorageClassList", "ConfigMapList", "DeploymentList", "BackupTargetList", "BackingImageList", "RecurringJobList"],
            ["VolumeList"], ["PersistentVolumeList"], ["PersistentVolumeClaimList"],
        ]
        for group in order:
            for kind in group:
                self._restore_kind(kind)

    def _restore_kind(self, kind):
        """restore(): retry until the kind succeeds; a kind that never does is an error, later kinds still run."""
        deadline = time.monotonic() + KIND_RESTORE_TIMEOUT
        while True:
            # Like upstream's ticker, every attempt (the first too) comes one interval later.
            time.sleep(RETRY_INTERVAL)
            self._restore_obj()
            try:
                self._restore_items(kind)
                LOG.info("system rollout %s: restored %s", self.name, kind)
                return
            except RolloutAborted:
                raise
            except Exception as exc:  # pylint: disable=broad-except
                message = describe(exc)
                if message == "volume is restoring data":
                    # Progress: a restore that moves data does not run into the lab's timeout.
                    deadline = time.monotonic() + KIND_RESTORE_TIMEOUT
                if time.monotonic() > deadline:
                    self.errors.append(message)
                    return

    def _rtype(self, kind):
        group, plural = LIST_KINDS[kind]
        return self.store.registry.by_plural(plural, group)

    def _annotations(self, annotations, skipped):
        annotations = dict(annotations or {})
        if skipped:
            annotations.pop(ANNOTATION_RESTORED, None)
            annotations.pop(ANNOTATION_RESTORED_AT, None)
            annotations[ANNOTATION_SKIPPED] = self.restored_url
            annotations[ANNOTATION_SKIPPED_AT] = self.restored_at
        else:
            annotations.pop(ANNOTATION_SKIPPED, None)
            annotations.pop(ANNOTATION_SKIPPED_AT, None)
            annotations[ANNOTATION_RESTORED] = self.restored_url
            annotations[ANNOTATION_RESTORED_AT] = self.restored_at
        return annotations

    def _annotated_now(self, obj):
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return self.restored_at in (annotations.get(ANNOTATION_RESTORED_AT), annotations.get(ANNOTATION_SKIPPED_AT))

    @staticmethod
    def _namespace_of(rtype, item):
        if not rtype.namespaced:
            return ""
        return (item.get("metadata") or {}).get("namespace") or LONGHORN_NAMESPACE

    def _create(self, rtype, item):
        obj = copy.deepcopy(item)
        meta = obj.setdefault("metadata", {})
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "managedFields", "selfLink"):
            meta.pop(key, None)
        meta["annotations"] = self._annotations(meta.get("annotations"), skipped=False)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        try:
            return self.store.create(rtype, obj, namespace=self._namespace_of(rtype, item) or None, user="longhorn-manager")
        except errors.AlreadyExists:
            return None

    def _update_existing(self, rtype, item, update=None):
        """Tag an existing object as skipped, or as restored when ``update`` changed it; objects tagged in this rollout stay."""
        namespace, name = self._namespace_of(rtype, item), item["metadata"]["name"]

        def _mutate(live):
            if self._annotated_now(live):
                return live
            changed = update(live) if update is not None else False
            live["metadata"]["annotations"] = self._annotations(live["metadata"].get("annotations"), skipped=not changed)
            return live
        return self.store.modify(rtype, namespace, name, _mutate, user="longhorn-manager")

    def _restore_items(self, kind, update=None):
        items = self.lists.get(kind)
        rtype = self._rtype(kind)
        if not items:
            return
        if rtype is None:
            raise RolloutError("the server could not find the requested resource (%s)" % LIST_KINDS[kind][1])
        handler = getattr(self, "_restore_" + kind[:-len("List")].lower(), None)
        if handler is not None:
            handler(rtype, items)
            return
        for item in items:
            self._restore_generic(rtype, item, update)

    def _restore_generic(self, rtype, item, update=None):
        existing = self.store.try_get(rtype, self._namespace_of(rtype, item), item["metadata"]["name"])
        if existing is None:
            self._create(rtype, item)
        else:
            self._update_existing(rtype, item, update)

    @staticmethod
    def _field_updater(*fields):
        """Update the given top-level fields when they differ from the backup (Settings, ConfigMaps, ...)."""
        def _factory(item):
            def _update(live):
                changed = False
                for field in fields:
                    if field in item and live.get(field) != item.get(field):
                        live[field] = copy.deepcopy(item[field])
                        changed = True
                return changed
            return _update
        return _factory

    def _restore_with_fields(self, rtype, items, *fields):
        factory = self._field_updater(*fields)
        for item in items:
            self._restore_generic(rtype, item, factory(item))

    # Kinds updated when they differ (ref §2): CRD versions, Settings, ConfigMaps, engine images, jobs, RBAC, apps.
    def _restore_customresourcedefinition(self, rtype, items):
        for item in items:
            def _versions(live, item=item):
                versions = list((live.get("spec") or {}).get("versions") or [])
                changed = False
                for version in (item.get("spec") or {}).get("versions") or []:
                    index = next((i for i, v in enumerate(versions) if v.get("name") == version.get("name")), None)
                    if index is None:
                        versions.append(version)
                        changed = True
                    elif versions[index] != version:
                        versions[index] = version
                        changed = True
                if changed:
                    live.setdefault("spec", {})["versions"] = versions
                return changed
            self._restore_generic(rtype, item, _versions)

    def _restore_setting(self, rtype, items):
        """Settings are updated as datastore.UpdateSetting does: with the from-longhorn annotation, removed afterwards."""
        for item in items:
            name = item["metadata"]["name"]
            if name in IGNORED_SETTINGS:
                continue
            if self.store.try_get(rtype, LONGHORN_NAMESPACE, name) is None:
                self._create(rtype, item)
                continue

            def _update(live, item=item):
                live["metadata"]["annotations"] = dict(live["metadata"].get("annotations") or {}, **{UPDATE_FROM_LONGHORN: ""})
                if live.get("value") != item.get("value"):
                    live["value"] = item.get("value")
                    return True
                return False
            self._update_existing(rtype, item, _update)

            def _unmark(live):
                annotations = dict(live["metadata"].get("annotations") or {})
                if UPDATE_FROM_LONGHORN not in annotations:
                    return live
                annotations.pop(UPDATE_FROM_LONGHORN)
                live["metadata"]["annotations"] = annotations
                return live
            self.store.modify(rtype, LONGHORN_NAMESPACE, name, _unmark, user="longhorn-manager")

    def _restore_configmap(self, rtype, items):
        kept = [item for item in items if item["metadata"]["name"] != IGNORED_CONFIGMAP]
        self._restore_with_fields(rtype, kept, "data")

    def _restore_engineimage(self, rtype, items):
        self._restore_with_fields(rtype, items, "spec")

    def _restore_recurringjob(self, rtype, items):
        self._restore_with_fields(rtype, items, "spec")

    def _restore_daemonset(self, rtype, items):
        self._restore_with_fields(rtype, items, "spec")

    def _restore_deployment(self, rtype, items):
        self._restore_with_fields(rtype, items, "spec")

    def _restore_clusterrole(self, rtype, items):
        self._restore_with_fields(rtype, items, "rules")

    def _restore_role(self, rtype, items):
        self._restore_with_fields(rtype, items, "rules")

    def _restore_clusterrolebinding(self, rtype, items):
        self._restore_with_fields(rtype, items, "roleRef", "subjects")

    def _restore_rolebinding(self, rtype, items):
        self._restore_with_fields(rtype, items, "roleRef", "subjects")

    def _restore_backuptarget(self, rtype, items):
        """A missing target is created from the backed-up spec only; a failed creation is only logged."""
        for item in items:
            if self.store.try_get(rtype, LONGHORN_NAMESPACE, item["metadata"]["name"]) is not None:
                self._update_existing(rtype, item)
                continue
            fresh = {"metadata": {"name": item["metadata"]["name"], "namespace": LONGHORN_NAMESPACE}, "spec": copy.deepcopy(item.get("spec") or {})}
            try:
                self._create(rtype, fresh)
            except errors.ApiError as exc:
                LOG.warning("system rollout %s: failed to create item: BackupTarget %s: %s", self.name, item["metadata"]["name"], exc.message)

    def _restore_volume(self, rtype, items):
        """ref §2 Volumes: never overwrite, clear nodeID, fromBackup from status.lastBackup, else come back empty."""
        ei_rtype = self._rtype("EngineImageList")
        for engine_image in self.lists.get("EngineImageList") or []:
            live = self.store.try_get(ei_rtype, LONGHORN_NAMESPACE, engine_image["metadata"]["name"]) if ei_rtype is not None else None
            if live is None:
                raise RolloutError('engineimages.longhorn.io "%s" not found' % engine_image["metadata"]["name"])
            if live["metadata"].get("deletionTimestamp"):
                raise RolloutError("engine image is deleting")
            if (live.get("status") or {}).get("state") != "deployed":
                raise RolloutError("engine image is in %s state" % ((live.get("status") or {}).get("state") or ""))
        for item in items:
            name = item["metadata"]["name"]
            existing = self.store.try_get(rtype, LONGHORN_NAMESPACE, name)
            if existing is not None:
                if (existing.get("spec") or {}).get("nodeID"):
                    LOG.warning("system rollout %s: failed to restore attached volume %s", self.name, name)
                    continue
                self._update_existing(rtype, item)
                continue
            volume = copy.deepcopy(item)
            spec = volume.setdefault("spec", {})
            status = volume.get("status") or {}
            spec["nodeID"] = ""
            if status.get("lastBackup") and not status.get("isStandby"):
                from .backupstore import encode_backup_url  # pylint: disable=import-outside-toplevel
                spec["fromBackup"] = encode_backup_url(status["lastBackup"], name, self.target_url)
            annotations = dict(volume["metadata"].get("annotations") or {})
            annotations[ANNOTATION_RESTORED_BACKUP] = spec.get("fromBackup") or ""
            volume["metadata"]["annotations"] = annotations
            try:
                self._create(rtype, volume)
            except errors.ApiError as exc:
                # A volume that cannot be created makes its PV and PVC skip (ref §2, #5086 for the blocking case).
                LOG.warning("system rollout %s: failed to create item: Volume %s: %s", self.name, name, exc.message)
                self._skip_dependents(name)

    def _skip_dependents(self, volume_name):
        for pv in self.lists.get("PersistentVolumeList") or []:
            if (((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")) == volume_name:
                self.done_items.add(("PersistentVolumeList", pv["metadata"]["name"]))
        for pvc in self.lists.get("PersistentVolumeClaimList") or []:
            if (pvc.get("spec") or {}).get("volumeName") == volume_name:
                self.done_items.add(("PersistentVolumeClaimList", pvc["metadata"].get("namespace", ""), pvc["metadata"]["name"]))

    def _restore_persistentvolume(self, rtype, items):
        """ref §2 PVs: only once their volume finished restoring; claimRef removed."""
        volumes = self._rtype("VolumeList")
        for item in items:
            name = item["metadata"]["name"]
            if ("PersistentVolumeList", name) in self.done_items:
                continue
            if self.store.try_get(rtype, "", name) is not None:
                self._update_existing(rtype, item)
                continue
            handle = ((item.get("spec") or {}).get("csi") or {}).get("volumeHandle") or ""
            volume = self.store.try_get(volumes, LONGHORN_NAMESPACE, handle) if volumes is not None else None
            if volume is None:
                raise RolloutError('volumes.longhorn.io "%s" not found' % handle)
            status = volume.get("status") or {}
            if get_condition(status.get("conditions"), COND_RESTORE).get("status") == "True":
                raise RolloutError("volume is restoring data")
            # Upstream's first try comes a 1 s tick after the volume was created, when the volume controller
            # has set restoreRequired; a volume whose restore is not initiated yet is waiting too.
            if status.get("restoreRequired") or ((volume.get("spec") or {}).get("fromBackup") and not status.get("restoreInitiated")):
                raise RolloutError("volume is waiting to restore data")
            pv = copy.deepcopy(item)
            pv.setdefault("spec", {}).pop("claimRef", None)
            self._create(rtype, pv)

    def _restore_persistentvolumeclaim(self, rtype, items):
        """ref §2 PVCs: need their PV; recreated with the original name and namespace."""
        for item in items:
            namespace, name = item["metadata"].get("namespace", ""), item["metadata"]["name"]
            if ("PersistentVolumeClaimList", namespace, name) in self.done_items:
                continue
            if self.store.try_get(rtype, namespace, name) is not None:
                self._update_existing(rtype, item)
                continue
            pv_name = (item.get("spec") or {}).get("volumeName") or ""
            if self.store.try_get("persistentvolumes", "", pv_name) is None:
                raise RolloutError('persistentvolumes "%s" not found' % pv_name)
            self._create(rtype, item)


CONTROLLERS = [SystemRestoreController]
