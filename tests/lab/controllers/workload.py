# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Workloads: the scheduler + kubelet for lab pods, and the ReplicaSet, Deployment and StatefulSet controllers.

Pods do not run anything; a pod is ``Running`` and Ready once it is scheduled on
``lab-node-1`` and every volume it mounts is there: its PVC Bound and, for a Longhorn
PV, the volume attached for this node (the CSI attacher's ticket satisfied).  Commands
run in pods through ``tests/lab/pods.py``.

The controllers follow kube-controller-manager (``pkg/controller/{replicaset,deployment,
statefulset}``) where clients can see it: object names, labels, owner references,
revision annotations, status fields (with their omitempty rules) and conditions,
OrderedReady/Parallel pod management, volumeClaimTemplates and the PVC retention policy.
Rolling updates are simplified: old pods are replaced without surge.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import os
import random
import re
import shutil
import threading

from .. import api_errors as errors
from ..longhorn import attachments
from . import csi
from . import pv as pvlib
from .runtime import Controller

LOG = logging.getLogger("lab.controllers.workload")

PODS = pvlib.PODS
PVCS = pvlib.PVCS
PVS = pvlib.PVS
REPLICA_SETS = ("apps", "replicasets")
DEPLOYMENTS = ("apps", "deployments")
STATEFUL_SETS = ("apps", "statefulsets")
LONGHORN_VOLUME_ATTACHMENTS = attachments.VOLUME_ATTACHMENTS
NODE = attachments.LAB_NODE

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_HASH = "controller-revision-hash"
STS_POD_NAME = "statefulset.kubernetes.io/pod-name"
STS_POD_INDEX = "apps.kubernetes.io/pod-index"
ANN_REVISION = "deployment.kubernetes.io/revision"
ANN_DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
ANN_MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated names and hashes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339():
    return pvlib.now_rfc3339()


def _parse_time(value):
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def safe_encode(text):
    return "".join(SAFE_ALPHABET[ord(char) % len(SAFE_ALPHABET)] for char in text)


def compute_hash(template, collision_count=0):
    """controller.ComputeHash: FNV-32a of the template (+ collisionCount), safe-encoded."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(value))


def random_suffix(length=5):
    return "".join(random.choice(SAFE_ALPHABET) for _index in range(length))


def owner_reference(obj, block=True):
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": block}


def controller_uid(obj):
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def controller_ref(obj):
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def get_condition(conditions, ctype):
    for cond in conditions or []:
        if cond.get("type") == ctype:
            return cond
    return None


def pod_ready(pod):
    cond = get_condition((pod.get("status") or {}).get("conditions"), "Ready")
    return (pod.get("status") or {}).get("phase") == "Running" and bool(cond) and cond.get("status") == "True"


def pod_available(pod, min_ready_seconds, now=None):
    if not pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = get_condition(pod["status"]["conditions"], "Ready").get("lastTransitionTime")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return bool(since) and (now - _parse_time(since)).total_seconds() >= min_ready_seconds


def pod_active(pod):
    return not pod["metadata"].get("deletionTimestamp") and not pvlib.pod_is_terminated(pod)


def resolve_int_or_percent(value, total, round_up):
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total
        return -(-scaled // 100) if round_up else scaled // 100
    return int(value)


def _without_zero(status, keys):
    """Drop ``omitempty`` integer fields that are 0, as the API serializes them."""
    for key in keys:
        if not status.get(key):
            status.pop(key, None)
    return status


# What a new object's status serializes to: the fields without omitempty (k8s.io/api apps/v1 types.go).
INITIAL_STATUS = {
    STATEFUL_SETS: {"replicas": 0, "availableReplicas": 0},
    REPLICA_SETS: {"replicas": 0},
}


def register(store, ctx=None):  # pylint: disable=unused-argument
    """Initial statuses of workload kinds (kept if the API server already defines them)."""
    for key, status in INITIAL_STATUS.items():
        store.initial_status.setdefault(key, copy.deepcopy(status))


def qos_class(spec):
    """The pod's QoS class from its containers' requests and limits."""
    requests, limits, containers = [], [], spec.get("containers") or []
    for container in containers:
        resources = container.get("resources") or {}
        requests.append(resources.get("requests") or {})
        limits.append(resources.get("limits") or {})
    if not any(requests) and not any(limits):
        return "BestEffort"
    for req, lim in zip(requests, limits):
        for resource in ("cpu", "memory"):
            if resource not in lim or req.get(resource, lim[resource]) != lim[resource]:
                return "Burstable"
    return "Guaranteed"


# ---- pods: scheduler + kubelet ---------------------------------------------------------

def pod_ip(uid):
    digest = hashlib.sha256(uid.encode()).digest()
    return "10.42.0.%d" % (2 + digest[0] % 250)


def _set_condition(conditions, ctype, status, reason=None, message=None, when=None):
    conditions = [dict(c) for c in conditions or []]
    for cond in conditions:
        if cond["type"] == ctype:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = when or now_rfc3339()
            cond["status"] = status
            for key, value in (("reason", reason), ("message", message)):
                if value:
                    cond[key] = value
                else:
                    cond.pop(key, None)
            return conditions
    cond = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": when or now_rfc3339()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    conditions.append(cond)
    return conditions


class PodController(Controller):
    """Schedules pods on the lab node and reports them Running once their volumes are mounted."""

    name = "pods"
    watches = (PODS, PVCS, PVS, LONGHORN_VOLUME_ATTACHMENTS)
    resync_period = 30.0

    def __init__(self, ctx):
        super().__init__(ctx)
        pvlib.register(self.store, ctx)
        register(self.store, ctx)
        self._lock = threading.Lock()
        self._pods_by_claim = {}        # (ns, claim) -> {pod names}
        self._claim_by_handle = {}      # Longhorn volume -> (ns, claim) of its PV's claimRef

    @staticmethod
    def _pod_key(namespace, name):
        return (PODS[0], PODS[1], namespace, name)

    def _pods_using(self, namespace, claim):
        with self._lock:
            return [self._pod_key(namespace, name) for name in sorted(self._pods_by_claim.get((namespace, claim), ()))]

    def _note_pod(self, pod, old, deleted):
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        with self._lock:
            for claim in pvlib.pod_claims(old) if old else ():
                self._pods_by_claim.get((namespace, claim), set()).discard(name)
            if not deleted:
                for claim in pvlib.pod_claims(pod):
                    self._pods_by_claim.setdefault((namespace, claim), set()).add(name)

    def _note_pv(self, volume, deleted):
        handle = csi.longhorn_volume_handle(volume)
        if not handle:
            return None
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        with self._lock:
            if deleted or not ref.get("name"):
                self._claim_by_handle.pop(handle, None)
                return None
            self._claim_by_handle[handle] = (ref.get("namespace", ""), ref["name"])
            return self._claim_by_handle[handle]

    def keys_for(self, event):
        obj = event.obj
        meta = obj["metadata"]
        if event.rtype_key == PODS:
            self._note_pod(obj, event.old, event.type == "DELETED")
            if event.type == "DELETED":
                return [("pods", "node-files", "", meta["uid"])]
            return [self._pod_key(meta["namespace"], meta["name"])]
        if event.rtype_key == PVCS:
            return self._pods_using(meta["namespace"], meta["name"])
        if event.rtype_key == PVS:
            claim = self._note_pv(obj, event.type == "DELETED")
            ref = (obj.get("spec") or {}).get("claimRef") or {}
            claim = claim or ((ref.get("namespace", ""), ref["name"]) if ref.get("name") else None)
            return self._pods_using(*claim) if claim else []
        volume = (obj.get("spec") or {}).get("volume") or meta["name"]
        with self._lock:
            claim = self._claim_by_handle.get(volume)
        return self._pods_using(*claim) if claim else []

    def initial_keys(self):
        # Rebuilt under the store's lock, so no event falls between the listing and the indexes.
        with self.store.changed:
            with self._lock:
                self._pods_by_claim = {}
                self._claim_by_handle = {}
            for volume in self.store.list("persistentvolumes")[0]:
                self._note_pv(volume, False)
            keys = []
            uids = set()
            for pod in self.store.list("pods")[0]:
                self._note_pod(pod, None, False)
                uids.add(pod["metadata"]["uid"])
                keys.append(self._pod_key(pod["metadata"]["namespace"], pod["metadata"]["name"]))
            # The kubelet's cleanupOrphanedPodDirs: node files of pods that are gone (e.g. after a wipe).
            pods_dir = self.ctx.config.path("pods")
            if os.path.isdir(pods_dir):
                keys.extend(("pods", "node-files", "", uid) for uid in sorted(os.listdir(pods_dir))
                            if not uid.startswith(".") and uid not in uids)
        return keys

    def reconcile(self, key):
        if key[1] == "node-files":
            # The kubelet removes a deleted pod's node-local volumes (emptyDir, projections).
            shutil.rmtree(self.ctx.config.path("pods", key[3]), ignore_errors=True)
            return None
        pod = self.store.try_get("pods", key[2], key[3])
        if pod is None or pod["metadata"].get("deletionTimestamp") or pvlib.pod_is_terminated(pod):
            return None
        if not (pod.get("spec") or {}).get("nodeName"):
            pod, delay = self._schedule(pod)
            if pod is None:
                return delay
        waiting, delay = self._volumes_waiting(pod)
        self._write_status(pod, waiting)
        return delay

    # -- scheduling ----------------------------------------------------------------------
    def _schedule(self, pod):
        """The scheduler's volume checks (VolumeBinding plugin), then the binding to the lab node."""
        namespace = pod["metadata"]["namespace"]
        problems = []
        for claim_name in pvlib.pod_claims(pod):
            claim = self.store.try_get("persistentvolumeclaims", namespace, claim_name)
            if claim is None:
                problems.append('persistentvolumeclaim "%s" not found' % claim_name)
                continue
            if claim["metadata"].get("deletionTimestamp"):
                problems.append('persistentvolumeclaim "%s" is being deleted' % claim_name)
                continue
            if (claim.get("status") or {}).get("phase") == "Bound":
                continue
            storage_class = self.store.try_get("storageclasses", "", pvlib.claim_class(claim)) if pvlib.claim_class(claim) else None
            if (storage_class or {}).get("volumeBindingMode") == pvlib.WAIT_FOR_FIRST_CONSUMER:
                self._select_node(claim)
                problems.append("waiting for volume binding of persistentvolumeclaim \"%s\"" % claim_name)
            else:
                problems.append("pod has unbound immediate PersistentVolumeClaims")
        uid = pod["metadata"]["uid"]
        if problems:
            message = "0/1 nodes are available: %s. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling." % (
                "; ".join(sorted(set(problems))))

            def _unschedulable(obj):
                self._same(obj, uid)
                status = obj.setdefault("status", {}) or {}
                obj["status"] = status
                status["phase"] = "Pending"
                status["conditions"] = _set_condition(status.get("conditions"), "PodScheduled", "False", "Unschedulable", message)
            self.store.modify("pods", namespace, pod["metadata"]["name"], _unschedulable, subresource="status", user="default-scheduler")
            return None, None

        def _bind(obj):
            self._same(obj, uid)
            obj["spec"]["nodeName"] = NODE
        pod = self.store.modify("pods", namespace, pod["metadata"]["name"], _bind, user="default-scheduler")
        return pod, None

    def _select_node(self, claim):
        if pvlib.ANN_SELECTED_NODE in (claim["metadata"].get("annotations") or {}):
            return

        def _annotate(obj):
            obj["metadata"]["annotations"] = obj["metadata"].get("annotations") or {}
            obj["metadata"]["annotations"][pvlib.ANN_SELECTED_NODE] = NODE
        self.store.modify("persistentvolumeclaims", claim["metadata"]["namespace"], claim["metadata"]["name"], _annotate,
                          user="default-scheduler")

    @staticmethod
    def _same(obj, uid):
        if obj["metadata"].get("uid") != uid:
            raise errors.NotFound("pods", obj["metadata"]["name"])

    # -- kubelet -------------------------------------------------------------------------
    def _volumes_waiting(self, pod):
        """What the kubelet still waits for before the containers can start, and a retry delay."""
        namespace = pod["metadata"]["namespace"]
        node = pod["spec"]["nodeName"]
        waiting, delay = [], None
        for claim_name in pvlib.pod_claims(pod):
            claim = self.store.try_get("persistentvolumeclaims", namespace, claim_name)
            if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
                waiting.append('persistentvolumeclaim "%s" is not bound' % claim_name)
                continue
            volume = self.store.try_get("persistentvolumes", "", (claim.get("spec") or {}).get("volumeName"))
            if volume is None:
                waiting.append('persistentvolume "%s" not found' % claim["spec"].get("volumeName"))
                continue
            handle = csi.longhorn_volume_handle(volume)
            if handle and not attachments.ticket_satisfied(self.store, handle, csi.attachment_id(handle, node)):
                waiting.append("AttachVolume.Attach pending for volume \"%s\"" % volume["metadata"]["name"])
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            for kind, plural, field in (("configMap", "configmaps", "name"), ("secret", "secrets", "secretName")):
                source = volume.get(kind)
                if source is None or source.get("optional"):
                    continue
                if self.store.try_get(plural, namespace, source.get(field)) is None:
                    waiting.append('MountVolume.SetUp failed for volume "%s" : %s "%s" not found' % (
                        volume.get("name"), kind.lower(), source.get(field)))
                    delay = 2.0
        return waiting, delay

    def _write_status(self, pod, waiting):
        uid = pod["metadata"]["uid"]
        running = not waiting
        now = now_rfc3339()

        def _status(obj):
            self._same(obj, uid)
            spec = obj.get("spec") or {}
            status = obj.get("status") or {}
            obj["status"] = status
            was_running = status.get("phase") == "Running"
            conditions = status.get("conditions")
            conditions = _set_condition(conditions, "PodReadyToStartContainers", "True" if running else "False")
            conditions = _set_condition(conditions, "Initialized", "True")
            reason = None if running else "ContainersNotReady"
            names = ", ".join(c.get("name", "") for c in spec.get("containers") or [])
            message = None if running else "containers with unready status: [%s]" % names
            conditions = _set_condition(conditions, "Ready", "True" if running else "False", reason, message)
            conditions = _set_condition(conditions, "ContainersReady", "True" if running else "False", reason, message)
            conditions = _set_condition(conditions, "PodScheduled", "True")
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
            status["conditions"] = sorted(conditions, key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))
            status["phase"] = "Running" if running else "Pending"
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            status.setdefault("startTime", now)
            status.setdefault("qosClass", qos_class(spec))
            if running:
                status["podIP"] = pod_ip(uid)
                status["podIPs"] = [{"ip": status["podIP"]}]
            status["containerStatuses"] = [self._container_status(c, running, was_running, status) for c in spec.get("containers") or []]
            if spec.get("initContainers"):
                status["initContainerStatuses"] = [{
                    "name": c.get("name"), "image": c.get("image", ""), "imageID": self._image_id(c), "ready": True,
                    "restartCount": 0, "started": False,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": status["startTime"],
                                             "finishedAt": status["startTime"]}}} for c in spec["initContainers"]]
            if waiting:
                status["message"] = "; ".join(waiting)
            else:
                status.pop("message", None)
        self.store.modify("pods", pod["metadata"]["namespace"], pod["metadata"]["name"], _status, subresource="status", user="kubelet")

    @staticmethod
    def _image_id(container):
        image = container.get("image", "")
        return "%s@sha256:%s" % (image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image,
                                 hashlib.sha256(image.encode()).hexdigest())

    def _container_status(self, container, running, was_running, status):
        previous = next((c for c in status.get("containerStatuses") or [] if c.get("name") == container.get("name")), {})
        if running:
            started_at = ((previous.get("state") or {}).get("running") or {}).get("startedAt") if was_running else None
            return {"name": container.get("name"), "image": container.get("image", ""), "imageID": self._image_id(container),
                    "containerID": previous.get("containerID") or "containerd://%064x" % random.getrandbits(256),
                    "ready": True, "started": True, "restartCount": 0,
                    "state": {"running": {"startedAt": started_at or now_rfc3339()}}, "lastState": {}}
        return {"name": container.get("name"), "image": container.get("image", ""), "imageID": "", "ready": False,
                "started": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}


# ---- ReplicaSets -----------------------------------------------------------------------

class _OwnedController(Controller):  # pylint: disable=abstract-method
    """Common routing: own kind -> itself; owned objects -> their controller owner."""

    own = ("", "")
    owned = ()

    def keys_for(self, event):
        meta = event.obj["metadata"]
        if event.rtype_key == self.own:
            return [(self.own[0], self.own[1], meta["namespace"], meta["name"])]
        keys = []
        for obj in (event.obj, event.old):
            ref = controller_ref(obj) if obj else None
            if ref and ref.get("kind") == self.kind_name:
                keys.append((self.own[0], self.own[1], meta["namespace"], ref["name"]))
        return keys

    @property
    def kind_name(self):
        return {"replicasets": "ReplicaSet", "deployments": "Deployment", "statefulsets": "StatefulSet"}[self.own[1]]

    def __init__(self, ctx):
        super().__init__(ctx)
        register(self.store, ctx)

    def owned_objects(self, plural, owner):
        items = self.store.list(plural, owner["metadata"]["namespace"])[0]
        return [o for o in items if controller_uid(o) == owner["metadata"]["uid"]]

    def write_status(self, plural, owner, status):
        uid = owner["metadata"]["uid"]

        def _status(obj):
            if obj["metadata"]["uid"] != uid:
                raise errors.NotFound(plural, obj["metadata"]["name"])
            obj["status"] = status
        return self.store.modify(plural, owner["metadata"]["namespace"], owner["metadata"]["name"], _status,
                                 subresource="status", user="kube-controller-manager")


class ReplicaSetController(_OwnedController):
    name = "replicaset"
    own = REPLICA_SETS
    owned = (PODS,)
    watches = (REPLICA_SETS, PODS)

    def reconcile(self, key):
        rs = self.store.try_get("replicasets", key[2], key[3])
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return None
        spec = rs.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        pods = [p for p in self.owned_objects("pods", rs) if pod_active(p)]
        if len(pods) < replicas:
            for _index in range(replicas - len(pods)):
                self._create_pod(rs)
        elif len(pods) > replicas:
            for pod in self._deletion_order(pods)[:len(pods) - replicas]:
                try:
                    self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"],
                                      preconditions={"uid": pod["metadata"]["uid"]}, user="replicaset-controller")
                except (errors.NotFound, errors.Conflict):
                    pass
        pods = [p for p in self.owned_objects("pods", rs) if pod_active(p)]
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        available = [p for p in pods if pod_available(p, min_ready)]
        status = _without_zero({
            "replicas": len(pods),
            "fullyLabeledReplicas": len([p for p in pods if template_labels.items() <= (p["metadata"].get("labels") or {}).items()]),
            "readyReplicas": len([p for p in pods if pod_ready(p)]),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }, ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"))
        self.write_status("replicasets", rs, status)
        if min_ready and len(available) < len([p for p in pods if pod_ready(p)]):
            return float(min_ready)
        return None

    @staticmethod
    def _deletion_order(pods):
        """controller.ActivePods ordering: unscheduled, pending, not ready, then the newest first."""
        def rank(pod):
            status = pod.get("status") or {}
            return (bool((pod.get("spec") or {}).get("nodeName")), status.get("phase") == "Running", pod_ready(pod),
                    "".join(chr(255 - ord(c)) for c in pod["metadata"].get("creationTimestamp", "")))
        return sorted(pods, key=rank)

    def _create_pod(self, rs):
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "name": "%s-%s" % (rs["metadata"]["name"], random_suffix()),
                "generateName": rs["metadata"]["name"] + "-",
                "namespace": rs["metadata"]["namespace"],
                "labels": dict(meta.get("labels") or {}),
                "ownerReferences": [owner_reference(rs)],
            },
            "spec": template.get("spec") or {},
        }
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        try:
            self.store.create("pods", pod, user="system:serviceaccount:kube-system:replicaset-controller")
        except errors.AlreadyExists:
            pass


# ---- Deployments -----------------------------------------------------------------------

class DeploymentController(_OwnedController):
    name = "deployment"
    own = DEPLOYMENTS
    owned = (REPLICA_SETS,)
    watches = (DEPLOYMENTS, REPLICA_SETS)

    def reconcile(self, key):
        deploy = self.store.try_get("deployments", key[2], key[3])
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return None
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = copy.deepcopy(spec.get("template") or {})
        template_hash = compute_hash(template, (deploy.get("status") or {}).get("collisionCount", 0))
        sets = self.owned_objects("replicasets", deploy)
        new_rs = next((rs for rs in sets if (rs["metadata"].get("labels") or {}).get(POD_TEMPLATE_HASH) == template_hash), None)
        old_sets = [rs for rs in sets if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        max_revision = max([int((rs["metadata"].get("annotations") or {}).get(ANN_REVISION, "0") or 0) for rs in old_sets] or [0])
        created = False
        if new_rs is None:
            new_rs = self._create_replica_set(deploy, template, template_hash, replicas, max_revision + 1)
            created = True
        else:
            new_rs = self._scale(new_rs, replicas, deploy, max_revision)
        for rs in old_sets:
            if int((rs.get("spec") or {}).get("replicas", 0)):
                self._scale(rs, 0, deploy, None)
        revision = (new_rs["metadata"].get("annotations") or {}).get(ANN_REVISION, "1")
        if (deploy["metadata"].get("annotations") or {}).get(ANN_REVISION) != revision:
            uid = deploy["metadata"]["uid"]

            def _annotate(obj):
                if obj["metadata"]["uid"] != uid:
                    raise errors.NotFound("deployments", obj["metadata"]["name"])
                obj["metadata"]["annotations"] = obj["metadata"].get("annotations") or {}
                obj["metadata"]["annotations"][ANN_REVISION] = revision
            deploy = self.store.modify("deployments", deploy["metadata"]["namespace"], deploy["metadata"]["name"], _annotate,
                                       user="deployment-controller")
        return self._sync_status(deploy, new_rs, self.owned_objects("replicasets", deploy), created)

    def _create_replica_set(self, deploy, template, template_hash, replicas, revision):
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = template_hash
        selector = copy.deepcopy((deploy.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = template_hash
        annotations = {k: v for k, v in (deploy["metadata"].get("annotations") or {}).items()
                       if k != ANN_REVISION and not k.startswith("kubectl.kubernetes.io/last-applied")}
        annotations.update({ANN_REVISION: str(revision), ANN_DESIRED_REPLICAS: str(replicas),
                            ANN_MAX_REPLICAS: str(replicas + self._max_surge(deploy))})
        rs = {
            "metadata": {
                "name": "%s-%s" % (deploy["metadata"]["name"], template_hash),
                "namespace": deploy["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(deploy)],
            },
            "spec": {"replicas": replicas, "minReadySeconds": int((deploy.get("spec") or {}).get("minReadySeconds") or 0),
                     "selector": selector, "template": template},
        }
        try:
            return self.store.create("replicasets", rs, user="system:serviceaccount:kube-system:deployment-controller")
        except errors.AlreadyExists:
            return self.store.get("replicasets", deploy["metadata"]["namespace"], rs["metadata"]["name"])

    def _scale(self, rs, replicas, deploy, max_revision):
        uid = rs["metadata"]["uid"]
        desired = str((deploy.get("spec") or {}).get("replicas", 1))

        def _apply(obj):
            if obj["metadata"]["uid"] != uid:
                raise errors.NotFound("replicasets", obj["metadata"]["name"])
            obj["spec"]["replicas"] = replicas
            annotations = obj["metadata"].get("annotations") or {}
            annotations[ANN_DESIRED_REPLICAS] = desired
            if max_revision is not None and int(annotations.get(ANN_REVISION, "0") or 0) <= max_revision and max_revision:
                # Rolling back to this template makes it the newest revision again.
                annotations[ANN_REVISION] = str(max_revision + 1)
            obj["metadata"]["annotations"] = annotations
        return self.store.modify("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"], _apply, user="deployment-controller")

    @staticmethod
    def _max_surge(deploy):
        spec = deploy.get("spec") or {}
        strategy = spec.get("strategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return 0
        return resolve_int_or_percent((strategy.get("rollingUpdate") or {}).get("maxSurge", "25%"), int(spec.get("replicas", 1)), True)

    @staticmethod
    def max_unavailable(deploy):
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
            return 0
        rolling = strategy.get("rollingUpdate") or {}
        unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
        surge = resolve_int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
        if unavailable == 0 and surge == 0:
            unavailable = 1
        return min(unavailable, replicas)

    def _sync_status(self, deploy, new_rs, sets, created):
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        previous = deploy.get("status") or {}
        total = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in sets)
        updated = int((new_rs.get("status") or {}).get("replicas", 0)) if new_rs else 0
        ready = sum(int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in sets)
        available = sum(int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in sets)
        wanted_total = sum(int((rs.get("spec") or {}).get("replicas", 0)) for rs in sets)
        status = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": total, "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
            "unavailableReplicas": max(0, wanted_total - available),
        }
        if "collisionCount" in previous:
            status["collisionCount"] = previous["collisionCount"]
        now = now_rfc3339()
        conditions = [dict(c) for c in previous.get("conditions") or []]
        if available >= replicas - self.max_unavailable(deploy):
            conditions = self._condition(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
        else:
            conditions = self._condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                         "Deployment does not have minimum availability.", now)
        rs_name = new_rs["metadata"]["name"]
        complete = updated == replicas and total == replicas and available == replicas
        progressing = get_condition(conditions, "Progressing")
        delay = None
        if created:
            conditions = self._condition(conditions, "Progressing", "True", "NewReplicaSetCreated",
                                         'Created new replica set "%s"' % rs_name, now)
        elif complete:
            conditions = self._condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                                         'ReplicaSet "%s" has successfully progressed.' % rs_name, now)
        elif progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
            pass
        else:
            progressed = (updated > int(previous.get("updatedReplicas", 0)) or available > int(previous.get("availableReplicas", 0))
                          or progressing is None or progressing.get("reason") == "NewReplicaSetAvailable")
            deadline = spec.get("progressDeadlineSeconds")
            if progressed:
                conditions = self._condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                                             'ReplicaSet "%s" is progressing.' % rs_name, now, touch=True)
            elif deadline is not None:
                since = (_parse_time(progressing["lastUpdateTime"]) if progressing and progressing.get("lastUpdateTime")
                         else datetime.datetime.now(datetime.timezone.utc))
                left = int(deadline) - (datetime.datetime.now(datetime.timezone.utc) - since).total_seconds()
                if left <= 0:
                    conditions = self._condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                                                 'ReplicaSet "%s" has timed out progressing.' % rs_name, now)
                else:
                    delay = left + 0.5
        status["conditions"] = conditions
        _without_zero(status, ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"))
        self.write_status("deployments", deploy, status)
        return delay

    @staticmethod
    def _condition(conditions, ctype, status, reason, message, now, touch=False):
        for cond in conditions:
            if cond["type"] == ctype:
                changed = (cond.get("status"), cond.get("reason"), cond.get("message")) != (status, reason, message)
                if cond.get("status") != status:
                    cond["lastTransitionTime"] = now
                if changed or touch:
                    cond["lastUpdateTime"] = now
                cond.update({"status": status, "reason": reason, "message": message})
                return conditions
        conditions.append({"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
                           "reason": reason, "message": message})
        return conditions


# ---- StatefulSets ----------------------------------------------------------------------

_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


class StatefulSetController(_OwnedController):
    name = "statefulset"
    own = STATEFUL_SETS
    owned = (PODS,)
    watches = (STATEFUL_SETS, PODS)

    def __init__(self, ctx):
        super().__init__(ctx)
        pvlib.register(self.store, ctx)

    @staticmethod
    def ordinal(sts, pod):
        match = _ORDINAL.match(pod["metadata"]["name"])
        if not match or match.group(1) != sts["metadata"]["name"]:
            return None
        return int(match.group(2))

    @staticmethod
    def claim_name(template, sts, ordinal):
        return "%s-%s-%d" % (template["metadata"]["name"], sts["metadata"]["name"], ordinal)

    def reconcile(self, key):
        sts = self.store.try_get("statefulsets", key[2], key[3])
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return None
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        start = int((spec.get("ordinals") or {}).get("start", 0))
        parallel = spec.get("podManagementPolicy") == "Parallel"
        template = spec.get("template") or {}
        update_revision = "%s-%s" % (sts["metadata"]["name"], compute_hash(template, (sts.get("status") or {}).get("collisionCount", 0)))
        current_revision = (sts.get("status") or {}).get("currentRevision") or update_revision
        pods = {}
        for pod in self.owned_objects("pods", sts):
            ordinal = self.ordinal(sts, pod)
            if ordinal is not None and pod_active(pod):
                pods[ordinal] = pod
        wanted = range(start, start + replicas)
        delay = None

        self._apply_retention_policy(sts, pods, wanted)
        # Condemned pods go highest ordinal first; OrderedReady one at a time.
        for ordinal in sorted((o for o in pods if o not in wanted), reverse=True):
            self._delete_pod(pods.pop(ordinal))
            if not parallel:
                return 0.0
        for ordinal in wanted:
            if ordinal in pods:
                if not parallel and not pod_ready(pods[ordinal]):
                    break       # OrderedReady: wait for this pod before creating the next
                continue
            self._create_pod(sts, ordinal, update_revision)
            if not parallel:
                break
        else:
            delay = self._rolling_update(sts, pods, wanted, update_revision, parallel)

        pods = {self.ordinal(sts, p): p for p in self.owned_objects("pods", sts) if pod_active(p)}
        self._sync_status(sts, pods, current_revision, update_revision, replicas)
        return delay

    def _rolling_update(self, sts, pods, wanted, update_revision, parallel):
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return None
        if not all(pod_ready(pods[o]) for o in wanted if o in pods):
            return None
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        stale = [o for o in wanted if o in pods and o >= partition
                 and (pods[o]["metadata"].get("labels") or {}).get(REVISION_HASH) != update_revision]
        for ordinal in sorted(stale, reverse=True):
            self._delete_pod(pods[ordinal])
            if not parallel:
                break
        return 0.0 if stale else None

    def _claims_for(self, sts, ordinal):
        selector_labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        claims = []
        for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            claim = copy.deepcopy(template)
            claim.pop("status", None)
            claim.pop("apiVersion", None)
            claim.pop("kind", None)
            meta = claim.setdefault("metadata", {})
            meta["name"] = self.claim_name(template, sts, ordinal)
            meta["namespace"] = sts["metadata"]["namespace"]
            labels = dict(meta.get("labels") or {})
            labels.update(selector_labels)
            meta["labels"] = labels
            for key in ("uid", "resourceVersion", "creationTimestamp", "generation"):
                meta.pop(key, None)
            claims.append((template["metadata"]["name"], claim))
        return claims

    def _create_pod(self, sts, ordinal, revision):
        namespace = sts["metadata"]["namespace"]
        policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
        claims = self._claims_for(sts, ordinal)
        for _template_name, claim in claims:
            if self.store.try_get("persistentvolumeclaims", namespace, claim["metadata"]["name"]) is not None:
                continue
            if policy.get("whenDeleted") == "Delete":
                claim["metadata"]["ownerReferences"] = [owner_reference(sts)]
            try:
                self.store.create("persistentvolumeclaims", claim, user="system:serviceaccount:kube-system:statefulset-controller")
            except errors.AlreadyExists:
                pass
        template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        name = "%s-%d" % (sts["metadata"]["name"], ordinal)
        labels = dict(meta.get("labels") or {})
        labels.update({REVISION_HASH: revision, STS_POD_NAME: name, STS_POD_INDEX: str(ordinal)})
        pod_spec = template.get("spec") or {}
        pod_spec["hostname"] = name
        if (sts.get("spec") or {}).get("serviceName"):
            pod_spec["subdomain"] = sts["spec"]["serviceName"]
        volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in {t for t, _c in claims}]
        for template_name, claim in claims:
            volumes.append({"name": template_name, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}})
        if volumes:
            pod_spec["volumes"] = volumes
        pod = {"metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": [owner_reference(sts)]},
               "spec": pod_spec}
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        try:
            self.store.create("pods", pod, user="system:serviceaccount:kube-system:statefulset-controller")
        except errors.AlreadyExists:
            pass

    def _delete_pod(self, pod):
        try:
            self.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"],
                              preconditions={"uid": pod["metadata"]["uid"]}, user="statefulset-controller")
        except (errors.NotFound, errors.Conflict):
            pass

    def _apply_retention_policy(self, sts, pods, wanted):
        """persistentVolumeClaimRetentionPolicy: owner references that let the garbage collector remove claims."""
        policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
        namespace = sts["metadata"]["namespace"]
        for ordinal, pod in pods.items():
            for _template_name, claim in self._claims_for(sts, ordinal):
                owners = []
                if policy.get("whenDeleted") == "Delete":
                    owners.append(owner_reference(sts))
                if policy.get("whenScaled") == "Delete" and ordinal not in wanted:
                    owners.append(dict(owner_reference(pod), controller=False))
                self._set_claim_owners(namespace, claim["metadata"]["name"], owners, {sts["metadata"]["uid"], pod["metadata"]["uid"]})

    def _set_claim_owners(self, namespace, name, owners, managed_uids):
        current = self.store.try_get("persistentvolumeclaims", namespace, name)
        if current is None:
            return
        refs = current["metadata"].get("ownerReferences") or []
        kept = [r for r in refs if r.get("uid") not in managed_uids]
        desired = kept + owners
        if desired == refs:
            return

        def _owners(obj):
            if desired:
                obj["metadata"]["ownerReferences"] = desired
            else:
                obj["metadata"].pop("ownerReferences", None)
        self.store.modify("persistentvolumeclaims", namespace, name, _owners, user="statefulset-controller")

    def _sync_status(self, sts, pods, current_revision, update_revision, replicas):
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        pods = list(pods.values())
        revisions = [(p["metadata"].get("labels") or {}).get(REVISION_HASH) for p in pods]
        updated = revisions.count(update_revision)
        if updated == replicas and len(pods) == replicas:
            current_revision = update_revision
        status = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": len([p for p in pods if pod_ready(p)]),
            "currentReplicas": revisions.count(current_revision),
            "updatedReplicas": updated,
            "availableReplicas": len([p for p in pods if pod_available(p, min_ready)]),
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": int((sts.get("status") or {}).get("collisionCount", 0)),
        }
        _without_zero(status, ("readyReplicas", "currentReplicas", "updatedReplicas"))
        self.write_status("statefulsets", sts, status)


CONTROLLERS = (PodController, ReplicaSetController, DeploymentController, StatefulSetController)
