# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Longhorn's CSI driver (``driver.longhorn.io``) with its sidecars, as far as the lab needs them.

- provisioner (csi-provisioner + ``lm@v1.10.2:csi/controller_server.go`` CreateVolume): a claim
  the PV controller handed to ``driver.longhorn.io`` gets a Longhorn Volume ``pvc-<claim uid>``
  and a PV of the same name, pre-bound to the claim (ref §5.1 for the PV shape);
- deleter (csi-provisioner + DeleteVolume): a Released PV of this driver with policy Delete is
  deleted together with its Longhorn volume;
- attacher (csi-attacher + ControllerPublishVolume): each ``storage.k8s.io`` VolumeAttachment
  kube-controller-manager's attach/detach controller makes for a Longhorn PV becomes a
  ``csi-attacher`` ticket of the same name on the volume's Longhorn VolumeAttachment.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time

from ..context import LONGHORN_NAMESPACE
from .. import api_errors as errors
from ..longhorn import attachments
from . import storage
from .runtime import Controller

LOG = logging.getLogger("lab.controllers.csi")

DRIVER = "driver.longhorn.io"
PVS = storage.PVS
PVCS = storage.PVCS
LONGHORN_VOLUMES = ("longhorn.io", "volumes")
LONGHORN_VOLUME_ATTACHMENTS = attachments.VOLUME_ATTACHMENTS
K8S_VOLUME_ATTACHMENTS = ("storage.k8s.io", "volumeattachments")
PROVISIONER_USER = "system:serviceaccount:longhorn-system:longhorn-service-account"

MIB = 1024 * 1024
MINIMAL_VOLUME_SIZE = 10 * MIB           # lm@v1.10.2:util/util.go MinimalVolumeSize
SIZE_ALIGNMENT = 2 * MIB                 # util.RoundUpSize
MINIMAL_VOLUME_SIZE_XFS = 300 * MIB      # util.MinimalVolumeSizeXFS
DEFAULT_STALE_REPLICA_TIMEOUT = 2880     # csi/util.go defaultStaleReplicaTimeout
DEFAULT_FS_TYPE = "ext4"                 # csi-provisioner --default-fstype in Longhorn's deployment
FS_TYPE_KEYS = ("csi.storage.k8s.io/fstype", "fsType", "fstype")
PREFIXED_PARAMETER = "csi.storage.k8s.io/"
ANN_PROVISIONER_IDENTITY = "storage.kubernetes.io/csiProvisionerIdentity"


def round_up_size(size):
    if size <= 0:
        return SIZE_ALIGNMENT
    return -(-size // SIZE_ALIGNMENT) * SIZE_ALIGNMENT


def attachment_id(volume_handle, node):
    """csi/controller_server.go generateAttachmentID = the name of Kubernetes' VolumeAttachment."""
    return "csi-%s" % hashlib.sha256(("%s%s%s" % (volume_handle, DRIVER, node)).encode()).hexdigest()


def longhorn_volume_handle(volume):
    csi = ((volume or {}).get("spec") or {}).get("csi") or {}
    return csi.get("volumeHandle") if csi.get("driver") == DRIVER else None


def _bool_param(params, key):
    return str(params.get(key, "")).lower() in ("1", "t", "true")


def volume_spec_for(parameters, size, access_mode):
    """getVolumeOptions + the REST VolumeCreate defaults: the Volume CR the CSI driver asks Longhorn for."""
    spec = {"size": str(size), "frontend": parameters.get("frontend") or "blockdev"}
    try:
        stale = int(parameters.get("staleReplicaTimeout", 0))
    except ValueError:
        stale = 0
    spec["staleReplicaTimeout"] = stale if stale > 0 else DEFAULT_STALE_REPLICA_TIMEOUT
    spec["accessMode"] = access_mode
    spec["migratable"] = _bool_param(parameters, "migratable") and access_mode == "rwx"
    spec["encrypted"] = _bool_param(parameters, "encrypted")
    if "numberOfReplicas" in parameters:
        spec["numberOfReplicas"] = int(parameters["numberOfReplicas"])
    spec["revisionCounterDisabled"] = _bool_param(parameters, "disableRevisionCounter") if "disableRevisionCounter" in parameters else True
    for key in ("replicaAutoBalance", "dataLocality", "unmapMarkSnapChainRemoved", "replicaSoftAntiAffinity",
                "replicaZoneSoftAntiAffinity", "replicaDiskSoftAntiAffinity", "fromBackup", "backupTargetName",
                "freezeFilesystemForSnapshot", "backingImage"):
        if key in parameters:
            spec[key] = parameters[key]
    if "backupBlockSize" in parameters:
        spec["backupBlockSize"] = str(storage.quantity_value(parameters["backupBlockSize"]))
    if "dataSource" in parameters:
        spec["dataSource"] = parameters["dataSource"]
        spec["cloneMode"] = parameters.get("cloneMode", "")
    for key in ("diskSelector", "nodeSelector"):
        if key in parameters:
            spec[key] = parameters[key].split(",")
    spec["dataEngine"] = parameters.get("dataEngine") or "v1"
    return spec


class ProvisionerController(Controller):
    """csi-provisioner for ``driver.longhorn.io``: provisions marked claims and deletes released volumes."""

    name = "csi-provisioner"
    watches = (PVCS, PVS, LONGHORN_VOLUMES, storage.STORAGE_CLASSES)

    def __init__(self, ctx):
        super().__init__(ctx)
        # One identity per provisioner start, as csi-provisioner records it in every PV.
        self.identity = "%d-%04d-%s" % (int(time.time() * 1000), random.randint(0, 9999), DRIVER)
        self._lock = threading.Lock()
        self._claims_by_uid = {}        # claim uid -> (ns, name): a volume pvc-<uid> concerns that claim
        self._pvs_by_handle = {}        # Longhorn volume -> PV name: a deleted volume lets its PV go

    @staticmethod
    def _claim_key(namespace, name):
        return (PVCS[0], PVCS[1], namespace, name)

    @staticmethod
    def _pv_key(name):
        return (PVS[0], PVS[1], "", name)

    def _note(self, rtype_key, obj, deleted):
        meta = obj["metadata"]
        with self._lock:
            if rtype_key == PVCS:
                if deleted:
                    self._claims_by_uid.pop(meta["uid"], None)
                else:
                    self._claims_by_uid[meta["uid"]] = (meta["namespace"], meta["name"])
            elif rtype_key == PVS:
                for handle in [h for h, n in self._pvs_by_handle.items() if n == meta["name"]]:
                    del self._pvs_by_handle[handle]
                handle = longhorn_volume_handle(obj)
                if handle and not deleted:
                    self._pvs_by_handle[handle] = meta["name"]

    def keys_for(self, event):
        obj = event.obj
        meta = obj["metadata"]
        deleted = event.type == "DELETED"
        if event.rtype_key in (PVCS, PVS):
            self._note(event.rtype_key, obj, deleted)
            if deleted:
                return []
            if event.rtype_key == PVCS:
                return [self._claim_key(meta["namespace"], meta["name"])]
            return [self._pv_key(meta["name"])]
        if event.rtype_key == LONGHORN_VOLUMES:
            # CreateVolume waits for the volume to leave "creating", DeleteVolume for it to be gone.
            keys = []
            with self._lock:
                claim = self._claims_by_uid.get(meta["name"][4:]) if meta["name"].startswith("pvc-") else None
                pv_name = self._pvs_by_handle.get(meta["name"])
            if claim:
                keys.append(self._claim_key(*claim))
            if pv_name:
                keys.append(self._pv_key(pv_name))
            return keys
        if not deleted:
            # A StorageClass that appears may be the one pending claims wait for.
            with self._lock:
                claims = list(self._claims_by_uid.values())
            return [self._claim_key(*c) for c in sorted(claims)]
        return []

    def initial_keys(self):
        claims = self.store.list("persistentvolumeclaims")[0]
        volumes = self.store.list("persistentvolumes")[0]
        with self._lock:
            self._claims_by_uid = {}
            self._pvs_by_handle = {}
        for claim in claims:
            self._note(PVCS, claim, False)
        for volume in volumes:
            self._note(PVS, volume, False)
        return ([self._claim_key(c["metadata"]["namespace"], c["metadata"]["name"]) for c in claims]
                + [self._pv_key(v["metadata"]["name"]) for v in volumes])

    def reconcile(self, key):
        _group, plural, namespace, name = key
        if plural == PVCS[1]:
            claim = self.store.try_get("persistentvolumeclaims", namespace, name)
            return self._provision(claim) if claim is not None else None
        if plural == PVS[1]:
            volume = self.store.try_get("persistentvolumes", "", name)
            return self._delete(volume) if volume is not None else None
        return None

    # ---- provisioning --------------------------------------------------------------------
    def _provision(self, claim):
        meta = claim["metadata"]
        annotations = meta.get("annotations") or {}
        spec = claim.get("spec") or {}
        if spec.get("volumeName") or meta.get("deletionTimestamp"):
            return None
        if DRIVER not in (annotations.get(storage.ANN_STORAGE_PROVISIONER), annotations.get(storage.ANN_BETA_STORAGE_PROVISIONER)):
            return None
        storage_class = self.store.try_get("storageclasses", "", storage.claim_class(claim))
        if storage_class is None or storage_class.get("provisioner") != DRIVER:
            return None
        if storage_class.get("volumeBindingMode") == storage.WAIT_FOR_FIRST_CONSUMER and not annotations.get(storage.ANN_SELECTED_NODE):
            return None
        pv_name = "pvc-%s" % meta["uid"]
        if self.store.try_get("persistentvolumes", "", pv_name) is not None:
            return None
        volumes_rtype = self.store.registry.by_plural(LONGHORN_VOLUMES[1], LONGHORN_VOLUMES[0])
        if volumes_rtype is None:
            return 1.0      # Longhorn is not installed (yet): CreateVolume fails and is retried

        parameters = {k: str(v) for k, v in (storage_class.get("parameters") or {}).items() if not k.startswith(PREFIXED_PARAMETER)}
        modes = spec.get("accessModes") or []
        if "ReadWriteMany" in modes:
            parameters["share"] = "true"
        if parameters.get("migratable") and "ReadWriteMany" not in modes:
            parameters["migratable"] = "false"
        access_mode = "rwx" if _bool_param(parameters, "share") else "rwo"
        block = storage.volume_mode(spec) == "Block"
        fs_type = None if block else next((storage_class["parameters"][k] for k in FS_TYPE_KEYS
                                           if k in (storage_class.get("parameters") or {})), DEFAULT_FS_TYPE)
        size = round_up_size(max(storage.quantity_value(storage.claim_request(claim)), MINIMAL_VOLUME_SIZE))
        if fs_type == "xfs" and size < MINIMAL_VOLUME_SIZE_XFS:
            LOG.warning("claim %s/%s: XFS filesystems with size %d, smaller than %d, are not supported",
                        meta["namespace"], meta["name"], size, MINIMAL_VOLUME_SIZE_XFS)
            return 30.0

        volume = self.store.try_get(volumes_rtype, LONGHORN_NAMESPACE, pv_name)
        if volume is None:
            try:
                volume = self.store.create(volumes_rtype, {
                    "metadata": {"name": pv_name, "namespace": LONGHORN_NAMESPACE},
                    "spec": volume_spec_for(parameters, size, access_mode),
                }, user=PROVISIONER_USER)
            except errors.AlreadyExists:
                return 0.0
            except errors.ApiError as exc:
                LOG.warning("claim %s/%s: creating Longhorn volume %s failed: %s", meta["namespace"], meta["name"], pv_name, exc.message)
                return 5.0
        elif storage.quantity_value((volume.get("spec") or {}).get("size", "0")) != size:
            LOG.warning("volume %s size %s differs from requested size %d", pv_name, volume["spec"].get("size"), size)
            return 30.0
        state = (volume.get("status") or {}).get("state")
        if state in (None, "", "creating"):
            # CreateVolume waits until the volume left "creating" (its status events bring us back).
            return None

        attributes = dict(parameters)
        attributes[ANN_PROVISIONER_IDENTITY] = self.identity
        csi = {"driver": DRIVER, "volumeHandle": pv_name, "volumeAttributes": attributes}
        if fs_type:
            csi["fsType"] = fs_type
        pv_spec = {
            "accessModes": list(modes),
            "capacity": {"storage": storage.format_binary(size)},
            "claimRef": storage.claim_reference(claim),
            "csi": csi,
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": storage.volume_mode(spec),
        }
        if storage_class.get("mountOptions"):
            pv_spec["mountOptions"] = list(storage_class["mountOptions"])
        try:
            self.store.create("persistentvolumes", {
                "metadata": {"name": pv_name, "annotations": {storage.ANN_DYNAMICALLY_PROVISIONED: DRIVER}},
                "spec": pv_spec,
            }, user=PROVISIONER_USER)
        except errors.AlreadyExists:
            pass
        return None

    # ---- deletion -------------------------------------------------------------------------
    def _delete(self, volume):
        """shouldDelete (Released, policy Delete, this driver), then DeleteVolume, then the PV."""
        handle = longhorn_volume_handle(volume)
        spec = volume.get("spec") or {}
        if not handle or volume["metadata"].get("deletionTimestamp"):
            return None
        if (volume.get("status") or {}).get("phase") != "Released" or spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return None
        volumes_rtype = self.store.registry.by_plural(LONGHORN_VOLUMES[1], LONGHORN_VOLUMES[0])
        if volumes_rtype is not None:
            longhorn_volume = self.store.try_get(volumes_rtype, LONGHORN_NAMESPACE, handle)
            if longhorn_volume is not None:
                if not longhorn_volume["metadata"].get("deletionTimestamp"):
                    try:
                        self.store.delete(volumes_rtype, LONGHORN_NAMESPACE, handle, user=PROVISIONER_USER)
                    except errors.NotFound:
                        pass
                    except errors.ApiError as exc:
                        LOG.warning("deleting Longhorn volume %s failed: %s", handle, exc.message)
                        return 5.0
                # DeleteVolume waits for the volume to be gone (its DELETED event brings us back).
                if self.store.try_get(volumes_rtype, LONGHORN_NAMESPACE, handle) is not None:
                    return None
        try:
            self.store.delete("persistentvolumes", "", volume["metadata"]["name"],
                              preconditions={"uid": volume["metadata"]["uid"]}, user=PROVISIONER_USER)
        except (errors.NotFound, errors.Conflict):
            pass
        return None


EXTERNAL_ATTACHER_FINALIZER = "external-attacher/driver-longhorn-io"   # csi-attacher: "external-attacher/" + sanitized driver


class ExternalAttacherController(Controller):
    """csi-attacher for ``driver.longhorn.io`` under the real attach-detach controller.

    kube-controller-manager creates a ``storage.k8s.io`` VolumeAttachment per (volume, node) a
    scheduled pod needs; csi-attacher (``pkg/controller/csi_handler.go`` syncAttach/syncDetach)
    puts its finalizer on it, calls ControllerPublishVolume and records ``status.attached``.
    Longhorn's ControllerPublishVolume (``lm@v1.10.2:csi/controller_server.go``) adds a
    ``csi-attacher`` ticket named after the VolumeAttachment to the Longhorn VolumeAttachment and
    waits until the volume is attached; Unpublish removes the ticket.
    """

    name = "csi-external-attacher"
    watches = (K8S_VOLUME_ATTACHMENTS, LONGHORN_VOLUME_ATTACHMENTS, LONGHORN_VOLUMES)
    resync_period = 30.0

    def __init__(self, ctx):
        super().__init__(ctx)
        self._lock = threading.Lock()
        self._by_volume = {}        # Longhorn volume -> names of the VolumeAttachments for it

    @staticmethod
    def _key(name):
        return (K8S_VOLUME_ATTACHMENTS[0], K8S_VOLUME_ATTACHMENTS[1], "", name)

    def _handle(self, attachment):
        pv_name = ((attachment.get("spec") or {}).get("source") or {}).get("persistentVolumeName")
        return longhorn_volume_handle(self.store.try_get("persistentvolumes", "", pv_name)) if pv_name else None

    def keys_for(self, event):
        meta = event.obj["metadata"]
        if event.rtype_key == K8S_VOLUME_ATTACHMENTS:
            if (event.obj.get("spec") or {}).get("attacher") != DRIVER:
                return []
            return [self._key(meta["name"])]
        volume = (event.obj.get("spec") or {}).get("volume") or meta["name"] if event.rtype_key == LONGHORN_VOLUME_ATTACHMENTS else meta["name"]
        with self._lock:
            return [self._key(name) for name in sorted(self._by_volume.get(volume, ()))]

    def initial_keys(self):
        keys = []
        for attachment in self.store.list(K8S_VOLUME_ATTACHMENTS)[0]:
            if (attachment.get("spec") or {}).get("attacher") == DRIVER:
                keys.append(self._key(attachment["metadata"]["name"]))
        return keys

    def _remember(self, volume, name, present):
        with self._lock:
            names = self._by_volume.setdefault(volume, set())
            if present:
                names.add(name)
            else:
                names.discard(name)

    def _set_attached(self, attachment, attached):
        if bool((attachment.get("status") or {}).get("attached")) == attached:
            return

        def _status(obj):
            status = obj.setdefault("status", {})
            status["attached"] = attached
            status.pop("attachError", None)
        self.store.modify(K8S_VOLUME_ATTACHMENTS, "", attachment["metadata"]["name"], _status, subresource="status")

    def _set_finalizer(self, name, present):
        def _change(obj):
            finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != EXTERNAL_ATTACHER_FINALIZER]
            obj["metadata"]["finalizers"] = finalizers + ([EXTERNAL_ATTACHER_FINALIZER] if present else [])
        try:
            self.store.modify(K8S_VOLUME_ATTACHMENTS, "", name, _change)
        except errors.NotFound:
            pass

    def reconcile(self, key):
        name = key[3]
        attachment = self.store.try_get(K8S_VOLUME_ATTACHMENTS, "", name)
        if attachment is None or (attachment.get("spec") or {}).get("attacher") != DRIVER:
            return None
        volume = self._handle(attachment)
        if volume is None:
            return 1.0
        node = attachment["spec"].get("nodeName", "")
        meta = attachment["metadata"]
        if meta.get("deletionTimestamp"):
            # syncDetach: ControllerUnpublishVolume, then drop our finalizer so the object can go.
            if name in attachments.tickets(self.store, volume):
                attachments.remove_ticket(self.store, volume, name)
            self._remember(volume, name, False)
            if EXTERNAL_ATTACHER_FINALIZER in (meta.get("finalizers") or []):
                self._set_finalizer(name, False)
            return None
        self._remember(volume, name, True)
        if EXTERNAL_ATTACHER_FINALIZER not in (meta.get("finalizers") or []):
            self._set_finalizer(name, True)
            return 0.0
        volumes_rtype = self.store.registry.by_plural(LONGHORN_VOLUMES[1], LONGHORN_VOLUMES[0])
        longhorn_volume = self.store.try_get(volumes_rtype, LONGHORN_NAMESPACE, volume) if volumes_rtype else None
        if longhorn_volume is None or longhorn_volume["metadata"].get("deletionTimestamp"):
            return 2.0          # ControllerPublishVolume: volume not found; csi-attacher retries
        if name not in attachments.tickets(self.store, volume):
            attachments.add_ticket(self.store, volume, name, attachments.CSI_ATTACHER, node_id=node)
        self._set_attached(attachment, attachments.ticket_satisfied(self.store, volume, name))
        return None


CONTROLLERS = (ProvisionerController, ExternalAttacherController)
