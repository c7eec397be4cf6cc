# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Kubernetes PersistentVolume controller, the PV/PVC protection controllers and their admission.

Follows kube-controller-manager's ``pkg/controller/volume/persistentvolume/pv_controller.go``
(syncClaim / syncUnboundClaim / syncBoundClaim / syncVolume / bind / unbindVolume /
reclaimVolume) with the HonorPVReclaimPolicy behaviour of Kubernetes >= 1.31: a
Released CSI volume with policy Delete is left to the CSI driver's deleter
(``controllers/csi.py``).  The protection controllers follow
``pkg/controller/volume/{pvcprotection,pvprotection}``; the admission part plays the
``StorageObjectInUseProtection`` and ``DefaultStorageClass`` admission plugins and
the API server's defaulting of PV/PVC fields.
"""

from __future__ import annotations

import datetime
import fractions
import re
import threading
import weakref

from .. import api_errors as errors
from ..kube.selectors import match_labels, selector_from_match_labels
from .runtime import Controller

PVS = ("", "persistentvolumes")
PVCS = ("", "persistentvolumeclaims")
PODS = ("", "pods")
STORAGE_CLASSES = ("storage.k8s.io", "storageclasses")

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
CONTROLLER_USER = "system:serviceaccount:kube-system:persistent-volume-binder"

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[kMGTPE]i|[mkMGTPE]|)$")
_SUFFIX = {"": 1, "m": fractions.Fraction(1, 1000), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15,
           "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


# ---- small shared helpers (also used by csi.py and workload.py) ------------------------

def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_quantity(value):
    """A resource.Quantity as an exact Fraction (``"1Gi"``, ``"500M"``, ``"1.5e3"``, ``10``)."""
    if isinstance(value, (int, float)):
        return fractions.Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': %r" % value)
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E"):
        return fractions.Fraction(number) * fractions.Fraction(10) ** int(suffix[1:])
    return fractions.Fraction(number) * _SUFFIX[suffix]


def quantity_value(value):
    """``Quantity.Value()``: the integer value, rounded up."""
    frac = parse_quantity(value)
    return -((-frac.numerator) // frac.denominator)


def format_binary(size):
    """``resource.NewQuantity(size, BinarySI).String()`` for a byte count."""
    size = int(size)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _SUFFIX[suffix]
        if size and size % unit == 0:
            return "%d%s" % (size // unit, suffix)
    return str(size)


def claim_class(claim):
    """storagehelpers.GetPersistentVolumeClaimClass: the beta annotation wins over the field."""
    annotations = claim["metadata"].get("annotations") or {}
    if ANN_BETA_STORAGE_CLASS in annotations:
        return annotations[ANN_BETA_STORAGE_CLASS]
    return (claim.get("spec") or {}).get("storageClassName") or ""


def volume_class(volume):
    annotations = volume["metadata"].get("annotations") or {}
    if ANN_BETA_STORAGE_CLASS in annotations:
        return annotations[ANN_BETA_STORAGE_CLASS]
    return (volume.get("spec") or {}).get("storageClassName") or ""


def claim_request(claim):
    requests = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {})
    return parse_quantity(requests.get("storage", 0))


def volume_capacity(volume):
    return parse_quantity(((volume.get("spec") or {}).get("capacity") or {}).get("storage", 0))


def is_volume_bound_to_claim(volume, claim):
    """storagehelpers.IsVolumeBoundToClaim: claimRef names the claim and its uid is empty or the claim's."""
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return False
    meta = claim["metadata"]
    if ref.get("name") != meta["name"] or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def claim_reference(claim):
    """What ``ref.GetReference`` makes of a claim (PV.spec.claimRef)."""
    meta = claim["metadata"]
    return {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion", "")}


def volume_mode(spec):
    return (spec or {}).get("volumeMode") or "Filesystem"


def check_volume_satisfies_claim(volume, claim):
    """checkVolumeSatisfyClaim: the reason a user-chosen PV cannot be bound, or None."""
    if volume["metadata"].get("deletionTimestamp"):
        return 'the volume is marked for deletion "%s"' % volume["metadata"]["name"]
    if volume_capacity(volume) < claim_request(claim):
        return "requested PV is too small"
    if volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(volume.get("spec")) != volume_mode(claim.get("spec")):
        return "incompatible volumeMode"
    if not set((claim.get("spec") or {}).get("accessModes") or []) <= set((volume.get("spec") or {}).get("accessModes") or []):
        return "incompatible accessMode"
    return None


def default_storage_class(store):
    """The default StorageClass (the newest one when several are marked), or None."""
    defaults = []
    for sc in store.list("storageclasses")[0]:
        annotations = sc["metadata"].get("annotations") or {}
        if "true" in (annotations.get(ANN_DEFAULT_CLASS), annotations.get(ANN_BETA_DEFAULT_CLASS)):
            defaults.append(sc)
    if not defaults:
        return None
    return sorted(defaults, key=lambda sc: (sc["metadata"].get("creationTimestamp", ""), sc["metadata"]["name"]))[-1]


def pod_claims(pod):
    """Names of the PVCs a pod uses (plain PVC volumes and generic ephemeral volumes)."""
    names = []
    for volume in ((pod or {}).get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            names.append(claim)
        elif volume.get("ephemeral") is not None:
            names.append("%s-%s" % (pod["metadata"]["name"], volume.get("name", "")))
    return names


def pod_is_terminated(pod):
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# ---- admission: StorageObjectInUseProtection ------------------------------------------

_REGISTERED = weakref.WeakSet()
_REGISTER_LOCK = threading.Lock()


def _admit(request):
    """The StorageObjectInUseProtection admission plugin; defaulting is the API server's (kube/builtin_validation.py)."""
    if request.operation != "CREATE" or request.subresource:
        return
    obj = request.obj
    if request.rtype.key == PVCS:
        _add_finalizer(obj, PVC_PROTECTION_FINALIZER)
    elif request.rtype.key == PVS:
        _add_finalizer(obj, PV_PROTECTION_FINALIZER)
        # PersistentVolumeStatus.lastPhaseTransitionTime is set from creation on (Kubernetes >= 1.29).
        obj.setdefault("status", {}).setdefault("lastPhaseTransitionTime", now_rfc3339())


def _add_finalizer(obj, finalizer):
    finalizers = obj["metadata"].get("finalizers") or []
    if finalizer not in finalizers:
        obj["metadata"]["finalizers"] = list(finalizers) + [finalizer]


def register(store, ctx=None):  # pylint: disable=unused-argument
    """Install the storage-protection admission plugin on ``store`` (once per store)."""
    with _REGISTER_LOCK:
        if store in _REGISTERED:
            return
        _REGISTERED.add(store)
    store.add_mutator(_admit)


# ---- the PV controller -----------------------------------------------------------------

class PersistentVolumeController(Controller):
    """Binds claims and volumes and walks their phases, as kube-controller-manager does."""

    name = "persistentvolume-binder"
    watches = (PVS, PVCS, STORAGE_CLASSES)
    resync_period = 15.0        # the real controller's --pvclaimbinder-sync-period

    def __init__(self, ctx):
        super().__init__(ctx)
        register(self.store, ctx)
        self._lock = threading.Lock()
        self._claims_by_volume_name = {}     # PV name -> {(ns, claim)} waiting for it by spec.volumeName
        # The volumes as the last store events left them, like the real controller's informer cache:
        # matching a claim scans it instead of copying every PV out of the store.
        self._volumes = {}

    # ---- routing ---------------------------------------------------------------------
    @staticmethod
    def _claim_key(namespace, name):
        return (PVCS[0], PVCS[1], namespace, name)

    @staticmethod
    def _volume_key(name):
        return (PVS[0], PVS[1], "", name)

    def keys_for(self, event):
        obj, old = event.obj, event.old
        meta = obj["metadata"]
        if event.rtype_key == PVCS:
            ident = (meta["namespace"], meta["name"])
            wanted = (obj.get("spec") or {}).get("volumeName") if event.type != "DELETED" else None
            with self._lock:
                for waiting in self._claims_by_volume_name.values():
                    waiting.discard(ident)
                if wanted:
                    self._claims_by_volume_name.setdefault(wanted, set()).add(ident)
            keys = [self._claim_key(*ident)]
            # A claim event concerns its volume too (deleteClaim queues the volume).
            for claim in (obj, old):
                volume_name = ((claim or {}).get("spec") or {}).get("volumeName")
                if volume_name:
                    keys.append(self._volume_key(volume_name))
            return keys
        if event.rtype_key == PVS:
            with self._lock:
                if event.type == "DELETED":
                    self._volumes.pop(meta["name"], None)
                else:
                    self._volumes[meta["name"]] = obj
            keys = [self._volume_key(meta["name"])]
            ref = (obj.get("spec") or {}).get("claimRef")
            if ref and ref.get("name"):
                keys.append(self._claim_key(ref.get("namespace", ""), ref["name"]))
            with self._lock:
                keys.extend(self._claim_key(*ident) for ident in sorted(self._claims_by_volume_name.get(meta["name"], ())))
            return keys
        if event.rtype_key == STORAGE_CLASSES and event.type != "DELETED":
            # A (new) class may unblock pending claims: provisioning or the default class.
            return [self._claim_key(c["metadata"]["namespace"], c["metadata"]["name"])
                    for c in self.store.list("persistentvolumeclaims")[0]
                    if (c.get("status") or {}).get("phase", "Pending") == "Pending"]
        return []

    def initial_keys(self):
        # Under the store's lock no event slips between the listing and the rebuilt caches
        # (the lock order is the one keys_for runs in: store, then ours).
        with self.store.changed:
            claims = self.store.list("persistentvolumeclaims")[0]
            volumes = self.store.list("persistentvolumes")[0]
            with self._lock:
                self._claims_by_volume_name = {}
                for claim in claims:
                    wanted = (claim.get("spec") or {}).get("volumeName")
                    if wanted:
                        meta = claim["metadata"]
                        self._claims_by_volume_name.setdefault(wanted, set()).add((meta["namespace"], meta["name"]))
                self._volumes = {v["metadata"]["name"]: v for v in volumes}
        keys = [self._claim_key(c["metadata"]["namespace"], c["metadata"]["name"]) for c in claims]
        keys.extend(self._volume_key(v["metadata"]["name"]) for v in volumes)
        return keys

    def reconcile(self, key):
        _group, plural, namespace, name = key
        if plural == PVCS[1]:
            claim = self.store.try_get("persistentvolumeclaims", namespace, name)
            return self.sync_claim(claim) if claim is not None else None
        if plural == PVS[1]:
            volume = self.store.try_get("persistentvolumes", "", name)
            return self.sync_volume(volume) if volume is not None else None
        return None

    # ---- claims ----------------------------------------------------------------------
    def sync_claim(self, claim):
        if ANN_BIND_COMPLETED not in (claim["metadata"].get("annotations") or {}):
            return self._sync_unbound_claim(claim)
        return self._sync_bound_claim(claim)

    def _storage_class(self, name):
        return self.store.try_get("storageclasses", "", name) if name else None

    def _sync_unbound_claim(self, claim):
        spec = claim.get("spec") or {}
        if not spec.get("volumeName"):
            storage_class = self._storage_class(claim_class(claim))
            delay_binding = (storage_class or {}).get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
            volume = self._find_best_match(claim, delay_binding)
            if volume is not None:
                return self._bind(volume, claim)
            if spec.get("storageClassName") is None and ANN_BETA_STORAGE_CLASS not in (claim["metadata"].get("annotations") or {}):
                if self._assign_default_storage_class(claim):
                    return None
            selected = ANN_SELECTED_NODE in (claim["metadata"].get("annotations") or {})
            # With delayed binding, provisioning waits until the scheduler picked a node for a pod.
            if claim_class(claim) and (selected or not delay_binding):
                self._provision_claim(claim, storage_class)
            self._update_claim_status(claim, "Pending", None)
            return None
        volume = self.store.try_get("persistentvolumes", "", spec["volumeName"])
        if volume is None:
            self._update_claim_status(claim, "Pending", None)
            return None
        if not (volume.get("spec") or {}).get("claimRef"):
            mismatch = check_volume_satisfies_claim(volume, claim)
            if mismatch:
                self._update_claim_status(claim, "Pending", None)
                return None
            return self._bind(volume, claim)
        if is_volume_bound_to_claim(volume, claim):
            return self._bind(volume, claim)
        # The PV belongs to another claim: wait (a user's choice) and retry later.
        self._update_claim_status(claim, "Pending", None)
        return None

    def _sync_bound_claim(self, claim):
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name:
            self._update_claim_status(claim, "Lost", None)
            return None
        volume = self.store.try_get("persistentvolumes", "", volume_name)
        if volume is None:
            self._update_claim_status(claim, "Lost", None)
            return None
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or ref.get("uid") == claim["metadata"]["uid"]:
            return self._bind(volume, claim)
        # Two claims point at one volume; this one is bound incorrectly.
        self._update_claim_status(claim, "Lost", None)
        return None

    def _find_best_match(self, claim, delay_binding):
        """FindMatchingVolume: a volume pre-bound to the claim, else the smallest fitting Available one."""
        with self._lock:
            cached = list(self._volumes.values())
        best = self._match(claim, delay_binding, cached)
        if best is None:
            return None
        # Bind what the store holds now; if the cache was behind, decide again on the store's volumes.
        fresh = self.store.try_get("persistentvolumes", "", best["metadata"]["name"])
        if fresh is not None and self._match(claim, delay_binding, [fresh]) is not None:
            return fresh
        return self._match(claim, delay_binding, self.store.list("persistentvolumes")[0])

    @staticmethod
    def _match(claim, delay_binding, volumes):
        requested = claim_request(claim)
        wanted_modes = set((claim.get("spec") or {}).get("accessModes") or [])
        wanted_class = claim_class(claim)
        selector = (claim.get("spec") or {}).get("selector")
        requirements = selector_from_match_labels(selector) if selector else None
        node_known = ANN_SELECTED_NODE in (claim["metadata"].get("annotations") or {})
        best, best_size = None, None
        for volume in sorted(volumes, key=lambda v: v["metadata"]["name"]):
            vspec = volume.get("spec") or {}
            if volume_mode(vspec) != volume_mode(claim.get("spec")):
                continue
            if not wanted_modes <= set(vspec.get("accessModes") or []):
                continue
            if volume["metadata"].get("deletionTimestamp"):
                continue
            size = volume_capacity(volume)
            if is_volume_bound_to_claim(volume, claim):
                if size < requested:
                    continue
                return volume
            # With delayed binding the scheduler matches volumes once it picked a node; the lab plays it here.
            if delay_binding and not node_known:
                continue
            if vspec.get("claimRef"):
                continue
            if requirements is not None and not match_labels(requirements, volume["metadata"].get("labels")):
                continue
            if volume_class(volume) != wanted_class:
                continue
            if size >= requested and (best is None or size < best_size):
                best, best_size = volume, size
        return best

    def _assign_default_storage_class(self, claim):
        """Retroactive default StorageClass assignment (Kubernetes >= 1.28) for claims with a nil class."""
        default = default_storage_class(self.store)
        if default is None:
            return False
        uid = claim["metadata"]["uid"]

        def _assign(obj):
            self._same(obj, uid, PVCS)
            if (obj.get("spec") or {}).get("storageClassName") is None:
                obj.setdefault("spec", {})["storageClassName"] = default["metadata"]["name"]
        self.store.modify("persistentvolumeclaims", claim["metadata"]["namespace"], claim["metadata"]["name"], _assign, user=CONTROLLER_USER)
        return True

    def _provision_claim(self, claim, storage_class):
        """provisionClaimOperationExternal: mark the claim for the external provisioner named by its class."""
        if storage_class is None:
            # storageclass.storage.k8s.io "<name>" not found: retried when a class appears (keys_for).
            return
        provisioner = storage_class.get("provisioner", "")
        if provisioner.startswith("kubernetes.io/") or not provisioner:
            return
        annotations = claim["metadata"].get("annotations") or {}
        if annotations.get(ANN_STORAGE_PROVISIONER) == provisioner:
            return
        uid = claim["metadata"]["uid"]

        def _mark(obj):
            self._same(obj, uid, PVCS)
            ann = obj["metadata"].setdefault("annotations", {}) or {}
            obj["metadata"]["annotations"] = ann
            ann[ANN_BETA_STORAGE_PROVISIONER] = provisioner
            ann[ANN_STORAGE_PROVISIONER] = provisioner
        self.store.modify("persistentvolumeclaims", claim["metadata"]["namespace"], claim["metadata"]["name"], _mark, user=CONTROLLER_USER)

    # ---- volumes ---------------------------------------------------------------------
    def sync_volume(self, volume):
        spec = volume.get("spec") or {}
        ref = spec.get("claimRef")
        if not ref:
            self._update_volume_phase(volume, "Available")
            return None
        if not ref.get("uid"):
            # Pre-bound by the user to a claim that has not bound yet.
            self._update_volume_phase(volume, "Available")
            return None
        claim = self.store.try_get("persistentvolumeclaims", ref.get("namespace", ""), ref.get("name", ""))
        if claim is not None and claim["metadata"]["uid"] != ref.get("uid"):
            claim = None        # the claim was deleted and another made under the same name
        if claim is None:
            phase = (volume.get("status") or {}).get("phase")
            if phase not in ("Released", "Failed"):
                volume = self._update_volume_phase(volume, "Released")
            return self._reclaim(volume)
        if not (claim.get("spec") or {}).get("volumeName"):
            # The claim sync finishes the binding (keys_for queued the claim).
            return None
        if claim["spec"]["volumeName"] == volume["metadata"]["name"]:
            self._update_volume_phase(volume, "Bound")
            return None
        # Bound to a claim that is bound elsewhere.
        annotations = volume["metadata"].get("annotations") or {}
        if ANN_DYNAMICALLY_PROVISIONED in annotations and spec.get("persistentVolumeReclaimPolicy") == "Delete":
            if (volume.get("status") or {}).get("phase") not in ("Released", "Failed"):
                volume = self._update_volume_phase(volume, "Released")
            return self._reclaim(volume)
        self._unbind_volume(volume)
        return None

    def _reclaim(self, volume):
        """reclaimVolume: Retain keeps, Delete of CSI volumes is the CSI deleter's job (HonorPVReclaimPolicy)."""
        spec = volume.get("spec") or {}
        policy = spec.get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            return None
        annotations = volume["metadata"].get("annotations") or {}
        external = spec.get("csi") is not None or (annotations.get(ANN_DYNAMICALLY_PROVISIONED) or "kubernetes.io/").split("/")[0] != "kubernetes.io"
        if policy == "Delete" and external:
            return None
        if policy == "Delete":
            message = 'error getting deleter volume plugin for volume "%s": no deletable volume plugin matched' % volume["metadata"]["name"]
        elif policy == "Recycle":
            message = "No recycler plugin found for the volume!"
        else:
            message = "Volume has unrecognized PersistentVolumeReclaimPolicy"
        self._update_volume_phase(volume, "Failed", message)
        return None

    def _unbind_volume(self, volume):
        uid = volume["metadata"]["uid"]

        def _unbind(obj):
            self._same(obj, uid, PVS)
            annotations = obj["metadata"].get("annotations") or {}
            if ANN_BOUND_BY_CONTROLLER in annotations:
                obj["spec"].pop("claimRef", None)
                annotations.pop(ANN_BOUND_BY_CONTROLLER, None)
                if annotations:
                    obj["metadata"]["annotations"] = annotations
                else:
                    obj["metadata"].pop("annotations", None)
            else:
                # Pre-bound by the user: only the binding uid goes.
                obj["spec"]["claimRef"]["uid"] = ""
        volume = self.store.modify("persistentvolumes", "", volume["metadata"]["name"], _unbind, user=CONTROLLER_USER)
        self._update_volume_phase(volume, "Available")

    # ---- binding ---------------------------------------------------------------------
    @staticmethod
    def _same(obj, uid, kind):
        if obj["metadata"].get("uid") != uid:
            raise errors.Conflict(kind[1], obj["metadata"]["name"])

    def _bind(self, volume, claim):
        """bind(): the volume first (spec, then phase), then the claim (spec, then status)."""
        volume = self._bind_volume_to_claim(volume, claim)
        volume = self._update_volume_phase(volume, "Bound")
        claim = self._bind_claim_to_volume(claim, volume)
        self._update_claim_status(claim, "Bound", volume)

    def _bind_volume_to_claim(self, volume, claim):
        uid = volume["metadata"]["uid"]
        reference = claim_reference(claim)

        version = volume["metadata"].get("resourceVersion")

        def _bind(obj):
            self._same(obj, uid, PVS)
            # Like the real controller's Update: a volume changed since it was chosen is chosen again.
            if version and obj["metadata"].get("resourceVersion") != version:
                raise errors.Conflict(PVS[1], obj["metadata"]["name"])
            by_controller = not is_volume_bound_to_claim(obj, claim)
            ref = obj["spec"].get("claimRef") or {}
            if (ref.get("name"), ref.get("namespace"), ref.get("uid")) != (reference["name"], reference["namespace"], reference["uid"]):
                obj["spec"]["claimRef"] = dict(reference)
            if by_controller:
                annotations = obj["metadata"].get("annotations") or {}
                annotations.setdefault(ANN_BOUND_BY_CONTROLLER, "yes")
                obj["metadata"]["annotations"] = annotations
        return self.store.modify("persistentvolumes", "", volume["metadata"]["name"], _bind, user=CONTROLLER_USER)

    def _bind_claim_to_volume(self, claim, volume):
        uid = claim["metadata"]["uid"]
        volume_name = volume["metadata"]["name"]

        def _bind(obj):
            self._same(obj, uid, PVCS)
            spec = obj.setdefault("spec", {})
            annotations = obj["metadata"].get("annotations") or {}
            if spec.get("volumeName") != volume_name:
                spec["volumeName"] = volume_name
                annotations.setdefault(ANN_BOUND_BY_CONTROLLER, "yes")
            annotations.setdefault(ANN_BIND_COMPLETED, "yes")
            obj["metadata"]["annotations"] = annotations
        return self.store.modify("persistentvolumeclaims", claim["metadata"]["namespace"], claim["metadata"]["name"], _bind,
                                 user=CONTROLLER_USER)

    def _update_volume_phase(self, volume, phase, message=""):
        status = volume.get("status") or {}
        if status.get("phase") == phase and (status.get("message") or "") == message:
            return volume
        uid = volume["metadata"]["uid"]

        def _phase(obj):
            self._same(obj, uid, PVS)
            current = obj.setdefault("status", {}) or {}
            obj["status"] = current
            if current.get("phase") != phase:
                current["lastPhaseTransitionTime"] = now_rfc3339()
            current["phase"] = phase
            if message:
                current["message"] = message
            else:
                current.pop("message", None)
        return self.store.modify("persistentvolumes", "", volume["metadata"]["name"], _phase, subresource="status", user=CONTROLLER_USER)

    def _update_claim_status(self, claim, phase, volume):
        uid = claim["metadata"]["uid"]

        def _status(obj):
            self._same(obj, uid, PVCS)
            status = obj.get("status") or {}
            obj["status"] = status
            status["phase"] = phase
            if volume is None:
                status.pop("accessModes", None)
                status.pop("capacity", None)
            else:
                vspec = volume.get("spec") or {}
                status["accessModes"] = list(vspec.get("accessModes") or [])
                status["capacity"] = dict(vspec.get("capacity") or {})
        return self.store.modify("persistentvolumeclaims", claim["metadata"]["namespace"], claim["metadata"]["name"], _status,
                                 subresource="status", user=CONTROLLER_USER)


# ---- protection controllers ------------------------------------------------------------

class ProtectionController(Controller):
    """Removes the pvc-protection finalizer once no pod uses the claim, pv-protection once the PV is not Bound."""

    name = "pvc-pv-protection"
    watches = (PVCS, PVS, PODS)

    def __init__(self, ctx):
        super().__init__(ctx)
        register(self.store, ctx)

    def keys_for(self, event):
        obj = event.obj
        meta = obj["metadata"]
        if event.rtype_key == PODS:
            # A pod that ends or goes away may release its claims.
            if event.type == "DELETED" or pod_is_terminated(obj) or meta.get("deletionTimestamp"):
                return [(PVCS[0], PVCS[1], meta["namespace"], claim) for claim in pod_claims(obj)]
            return []
        if event.type == "DELETED" or not meta.get("deletionTimestamp"):
            return []
        return [(event.rtype_key[0], event.rtype_key[1], meta.get("namespace", ""), meta["name"])]

    def initial_keys(self):
        keys = []
        for plural, key in (("persistentvolumeclaims", PVCS), ("persistentvolumes", PVS)):
            for obj in self.store.list(plural)[0]:
                if obj["metadata"].get("deletionTimestamp"):
                    keys.append((key[0], key[1], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
        return keys

    def reconcile(self, key):
        _group, plural, namespace, name = key
        if plural == PVCS[1]:
            claim = self.store.try_get("persistentvolumeclaims", namespace, name)
            if claim is None or not claim["metadata"].get("deletionTimestamp"):
                return None
            if PVC_PROTECTION_FINALIZER not in (claim["metadata"].get("finalizers") or []):
                return None
            for pod in self.store.list("pods", namespace)[0]:
                # Only scheduled pods count: the kubelet will not start a pod on a claim being deleted.
                if (pod.get("spec") or {}).get("nodeName") and not pod_is_terminated(pod) and name in pod_claims(pod):
                    return None
            self._drop_finalizer("persistentvolumeclaims", namespace, name, claim["metadata"]["uid"], PVC_PROTECTION_FINALIZER)
            return None
        volume = self.store.try_get("persistentvolumes", "", name)
        if volume is None or not volume["metadata"].get("deletionTimestamp"):
            return None
        if PV_PROTECTION_FINALIZER not in (volume["metadata"].get("finalizers") or []):
            return None
        if (volume.get("status") or {}).get("phase") != "Bound":
            self._drop_finalizer("persistentvolumes", "", name, volume["metadata"]["uid"], PV_PROTECTION_FINALIZER)
        return None

    def _drop_finalizer(self, plural, namespace, name, uid, finalizer):
        def _drop(obj):
            if obj["metadata"].get("uid") != uid:
                raise errors.NotFound(plural, name)
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        try:
            self.store.modify(plural, namespace, name, _drop, user="system:serviceaccount:kube-system:pvc-protection-controller")
        except errors.NotFound:
            pass


CONTROLLERS = (PersistentVolumeController, ProtectionController)
