# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A store with the Kubernetes-side lab controllers running, for unit tests (no HTTP).

Longhorn itself is played by ``FakeLonghorn``, the smallest stand-in for the volume
controller these controllers talk to: a new volume leaves ``creating``, a volume with
attachment tickets is ``attached`` with every ticket satisfied, one without is ``detached``.
"""

from __future__ import annotations

import os
import time


from tests.lab.context import LONGHORN_NAMESPACE, LabConfig, LabContext
from tests.lab.controllers import csi, pv, workload
from tests.lab.controllers.runtime import Controller, ControllerManager
from tests.lab.kube import builtin_validation, schema
from tests.lab.kube.resources import Registry
from tests.lab.kube.store import Store
from tests.lab.longhorn import attachments, load_manifest

CRD_MANIFEST = os.path.join(os.path.dirname(__file__), "..", "..", "lab", "longhorn", "crds.yaml")
VOLUMES = ("longhorn.io", "volumes")

# A minimal CRD for the VolumeAttachment kind when the lab's manifest does not define it.
VOLUME_ATTACHMENT_CRD = {
    "metadata": {"name": "volumeattachments.longhorn.io"},
    "spec": {
        "group": "longhorn.io", "scope": "Namespaced",
        "names": {"kind": "VolumeAttachment", "plural": "volumeattachments", "singular": "volumeattachment", "shortNames": ["lhva"]},
        "versions": [{"name": "v1beta2", "served": True, "storage": True, "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}

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
    """Store + controllers; ``settle()`` waits until the controllers are idle."""

    def __init__(self, state_dir, longhorn=True, controllers=None, storage_class=True):
        self.store = Store(Registry())
        # The API server's admission, in the lab's order (tests/lab/lab.py): the controllers' writes
        # must pass the same defaulting and validation as on the lab (and a real API server).
        self.store.add_mutator(schema.schema_mutator)
        self.store.add_validator(schema.schema_validator)
        builtin_validation.register(self.store)
        self.ctx = LabContext(config=LabConfig(state_dir=str(state_dir)), store=self.store)
        for name in ("default", LONGHORN_NAMESPACE):
            self.store.create("namespaces", {"metadata": {"name": name}})
        for crd in load_manifest(CRD_MANIFEST):
            if crd["spec"]["names"]["plural"] in ("volumes", "volumeattachments"):
                self.store.create("customresourcedefinitions", crd)
        if self.store.registry.by_plural("volumeattachments", "longhorn.io") is None:
            self.store.create("customresourcedefinitions", VOLUME_ATTACHMENT_CRD)
        if storage_class:
            self.store.create("storageclasses", LONGHORN_STORAGE_CLASS)
        self.manager = ControllerManager(self.store)
        classes = controllers if controllers is not None else (pv.CONTROLLERS + csi.CONTROLLERS + workload.CONTROLLERS)
        for controller_class in classes:
            self.manager.add(controller_class(self.ctx))
        if longhorn:
            self.manager.add(FakeLonghorn(self.ctx))

    def start(self):
        self.manager.start()
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
