# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real cluster with the lab's CSI controllers running, for unit tests of the Kubernetes side.

The cluster is a real control plane seeded from the lab template (Longhorn's CRDs and objects
installed, its webhooks served): kube-controller-manager binds claims, runs the attach-detach
controller and the workloads, the scheduler places pods on the lab's node. The lab adds its CSI
provisioner and external attacher. Longhorn itself is played by ``FakeLonghorn``, the smallest
stand-in for the volume controller these controllers talk to: a new volume leaves ``creating``,
a volume with attachment tickets is ``attached`` with every ticket satisfied, one without is
``detached``, and a deleted volume loses its finalizer.
"""

from __future__ import annotations

import time

from tests.lab.context import LONGHORN_NAMESPACE
from tests.lab.controllers import csi
from tests.lab.controllers.runtime import Controller
from tests.lab.longhorn import attachments

VOLUMES = ("longhorn.io", "volumes")

LONGHORN_STORAGE_CLASS = {
    "metadata": {"name": "longhorn", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "driver.longhorn.io",
    "allowVolumeExpansion": True,
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
    "parameters": {"numberOfReplicas": "3", "staleReplicaTimeout": "30", "fromBackup": "", "fsType": "ext4",
                   "dataLocality": "disabled", "dataEngine": "v1"},
}


class FakeLonghorn(Controller):
    """Volume states and ticket satisfaction, as far as the Kubernetes side observes them."""

    name = "fake-longhorn"
    watches = (VOLUMES, attachments.VOLUME_ATTACHMENTS)

    def keys_for(self, event):
        meta = event.obj["metadata"]
        name = (event.obj.get("spec") or {}).get("volume") or meta["name"]
        return [(VOLUMES[0], VOLUMES[1], LONGHORN_NAMESPACE, name)]

    def reconcile(self, key):
        rtype = self.store.registry.by_plural("volumes", "longhorn.io")
        volume = self.store.try_get(rtype, LONGHORN_NAMESPACE, key[3])
        if volume is None:
            return None
        if volume["metadata"].get("deletionTimestamp"):
            # Longhorn's volume controller lets a deleted volume go once it has cleaned up.
            self.store.modify(rtype, LONGHORN_NAMESPACE, key[3], lambda obj: obj["metadata"].update(finalizers=[]))
            return None
        tickets = attachments.tickets(self.store, key[3])
        if (volume.get("status") or {}).get("state") in (None, "", "creating"):
            attachments.ensure_volume_attachment(self.store, key[3])
        state = "attached" if tickets else "detached"

        def _volume(obj):
            obj["status"] = dict(obj.get("status") or {}, state=state)
        self.store.modify(rtype, LONGHORN_NAMESPACE, key[3], _volume, subresource="status")
        va_rtype = self.store.registry.by_plural("volumeattachments", "longhorn.io")

        def _tickets(obj):
            obj["status"] = {"attachmentTicketStatuses": {tid: {"id": tid, "satisfied": True, "conditions": []} for tid in tickets}}
        self.store.modify(va_rtype, LONGHORN_NAMESPACE, key[3], _tickets, subresource="status")
        return None


class KubeEnv:
    """A seeded real cluster + the lab's CSI controllers (+ FakeLonghorn); ``settle()`` waits until the lab's controllers are idle."""

    def __init__(self, seeded_cluster, longhorn=True, controllers=None, storage_class=True):
        self.cluster = seeded_cluster()
        self.store = self.cluster.store
        self.ctx = self.cluster.ctx
        if storage_class and self.store.try_get("storageclasses", "", "longhorn") is None:
            self.store.create("storageclasses", LONGHORN_STORAGE_CLASS)
        self.manager = self.cluster.manager
        for controller_class in controllers if controllers is not None else csi.CONTROLLERS:
            self.manager.add(controller_class(self.ctx))
        if longhorn:
            self.manager.add(FakeLonghorn(self.ctx))

    def start(self):
        self.cluster.start_controllers()
        return self

    def stop(self):
        self.manager.stop()

    def settle(self, timeout=10.0):
        assert self.manager.wait_idle(timeout=timeout, horizon=0.2), "controllers did not settle"

    def wait_for(self, predicate, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s" % what)

    # -- shortcuts -----------------------------------------------------------------------
    def get(self, plural, namespace, name):
        return self.store.try_get(plural, namespace, name)

    def longhorn_volume(self, name):
        return self.store.try_get(self.store.registry.by_plural("volumes", "longhorn.io"), LONGHORN_NAMESPACE, name)

    def phase(self, plural, namespace, name):
        obj = self.get(plural, namespace, name)
        return ((obj or {}).get("status") or {}).get("phase")


def static_pv(name, size="1Gi", volume_handle=None, storage_class="longhorn-static", claim_ref=None, policy="Retain",
              access_modes=("ReadWriteOnce",), labels=None):
    """A PV over an existing Longhorn volume, shaped as ref §5.1 describes."""
    spec = {
        "capacity": {"storage": size},
        "accessModes": list(access_modes),
        "persistentVolumeReclaimPolicy": policy,
        "storageClassName": storage_class,
        "volumeMode": "Filesystem",
        "csi": {"driver": "driver.longhorn.io", "fsType": "ext4", "volumeHandle": volume_handle or name,
                "volumeAttributes": {"numberOfReplicas": "3", "staleReplicaTimeout": "2880"}},
    }
    if claim_ref:
        spec["claimRef"] = dict(claim_ref)
    obj = {"metadata": {"name": name}, "spec": spec}
    if labels:
        obj["metadata"]["labels"] = dict(labels)
    return obj


def pvc(name, namespace="default", size="1Gi", storage_class="longhorn-static", volume_name=None, access_modes=("ReadWriteOnce",)):
    spec = {"accessModes": list(access_modes), "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume_name:
        spec["volumeName"] = volume_name
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def longhorn_volume(name, size=1024 ** 3):
    return {"metadata": {"name": name, "namespace": LONGHORN_NAMESPACE},
            "spec": {"size": str(size), "numberOfReplicas": 3, "frontend": "blockdev", "accessMode": "rwo", "dataEngine": "v1"}}
