# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A freshly installed Longhorn, as the Helm chart and longhorn-manager leave it (ref §1, §1.2, §6).

Everything is written through the store so watches, webhooks and the audit log see it.
Running it again after a wipe recreates what is missing and keeps what exists.
"""

from __future__ import annotations

import hashlib
import os
import time

import yaml

from ..context import LONGHORN_NAMESPACE
from .. import api_errors as errors
from .common import rfc3339
from . import settings as lh_settings
from .attachments import LAB_NODE
from .targets import DEFAULT_BACKUP_TARGET, DEFAULT_POLL_INTERVAL
from . import load_manifest

CRD_FILES = ("crds.yaml", "crds_extra.yaml")
STORAGE_CLASS = "longhorn"
MANAGER_USER = "system:serviceaccount:longhorn-system:longhorn-service-account"
EMPTY_URL_MESSAGE = "backup target URL is empty"
NODE_STORAGE_BYTES = 200 * 1024 ** 3


def helm_labels(version):
    """``longhorn.labels`` of the chart (lh@v1.10.2:chart/templates/_helpers.tpl)."""
    return {
        "app.kubernetes.io/name": "longhorn",
        "helm.sh/chart": "longhorn-%s" % version.lstrip("v"),
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/instance": "longhorn",
        "app.kubernetes.io/version": version,
    }


def load_crds():
    crds = []
    here = os.path.dirname(os.path.abspath(__file__))
    for name in CRD_FILES:
        path = os.path.join(here, name)
        if not os.path.exists(path):
            continue
        crds.extend(load_manifest(path))
    return crds


def condition(ctype, status, reason="", message="", when=None):
    """A Longhorn Condition (ref §1 "The Condition type"); lastProbeTime is unused by Longhorn."""
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastProbeTime": "", "lastTransitionTime": when or rfc3339()}


def _ensure(store, rtype, obj, status=None):
    """Create ``obj`` unless it exists; then set ``status`` if the object has none yet."""
    meta = obj["metadata"]
    namespace = meta.get("namespace", "")
    current = store.try_get(rtype, namespace, meta["name"])
    if current is None:
        try:
            current = store.create(rtype, obj, user=MANAGER_USER)
        except errors.AlreadyExists:
            current = store.get(rtype, namespace, meta["name"])
    if status is not None and not current.get("status"):
        def _set(live):
            live["status"] = status
        current = store.modify(rtype, namespace, meta["name"], _set, subresource="status", user=MANAGER_USER)
    return current


def _install_crds(store, timeout=60.0):
    crds = load_crds()
    for crd in crds:
        _ensure(store, "customresourcedefinitions", crd)
    # A real API server serves a new CRD once it is Established (about a second later).
    deadline = time.monotonic() + timeout
    for crd in crds:
        names = crd["spec"]["names"]
        while store.registry.by_plural(names["plural"], crd["spec"]["group"]) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("CRD %s was not served within %ss" % (crd["metadata"]["name"], timeout))
            time.sleep(0.2)


def _install_settings(ctx):
    store = ctx.store
    rtype = store.registry.by_plural("settings", "longhorn.io")
    for name, value in sorted(lh_settings.default_settings(ctx.config.longhorn_version).items()):
        _ensure(store, rtype, lh_settings.setting_object(name, value), status={"applied": True})


def _install_configmaps(ctx):
    version = ctx.config.longhorn_version
    labels = helm_labels(version)
    # lh@v1.10.2:chart/templates/default-setting.yaml rendered with the chart's values.yaml.
    default_setting = 'priority-class: "longhorn-critical"'
    if ctx.config.longhorn_minor >= (1, 10):
        default_setting += '\ndisable-revision-counter: "{\\"v1\\":\\"true\\"}"'
    # ref §1.2: the chart writes backup-target keys only when defaultBackupStore.* are set; by default none are.
    for name, key, data in (("longhorn-default-setting", "default-setting.yaml", default_setting),
                            ("longhorn-default-resource", "default-resource.yaml", ""),
                            ("longhorn-storageclass", "storageclass.yaml", yaml.safe_dump(storage_class(), sort_keys=False))):
        _ensure(ctx.store, "configmaps", {
            "metadata": {"name": name, "namespace": LONGHORN_NAMESPACE, "labels": dict(labels)},
            "data": {key: data},
        })


def storage_class():
    """The ``longhorn`` StorageClass of the chart's longhorn-storageclass ConfigMap (lh@v1.10.2:chart/templates/storageclass.yaml)."""
    return {
        "kind": "StorageClass",
        "apiVersion": "storage.k8s.io/v1",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "driver.longhorn.io",
        "allowVolumeExpansion": True,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "parameters": {
            "numberOfReplicas": "3",
            "staleReplicaTimeout": "30",
            "fromBackup": "",
            "fsType": "ext4",
            "dataLocality": "disabled",
            "unmapMarkSnapChainRemoved": "ignored",
            "disableRevisionCounter": "true",
            "dataEngine": "v1",
            "backupTargetName": "default",
        },
    }


def _install_storage_class(ctx):
    sc = storage_class()
    # The manager applies the ConfigMap and records it (controller/kubernetes_configmap_controller.go).
    sc["metadata"]["annotations"]["longhorn.io/last-applied-configmap"] = yaml.safe_dump(storage_class(), sort_keys=False)
    _ensure(ctx.store, "storageclasses", sc)


def _install_nodes(ctx):
    store = ctx.store
    version = ctx.config.longhorn_version
    now = rfc3339()
    _ensure(store, "nodes", {
        "metadata": {"name": LAB_NODE, "labels": {
            "kubernetes.io/hostname": LAB_NODE, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/control-plane": "true", "node.kubernetes.io/instance-type": "k3s"}},
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"], "providerID": "k3s://%s" % LAB_NODE},
    }, status={
        "conditions": [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": LAB_NODE}],
        "capacity": {"cpu": "2", "memory": "8025424Ki", "pods": "110", "ephemeral-storage": "203056560Ki"},
        "allocatable": {"cpu": "2", "memory": "8025424Ki", "pods": "110", "ephemeral-storage": "197533340367"},
        "nodeInfo": {"kubeletVersion": "v1.33.5+k3s1", "kubeProxyVersion": "v1.33.5+k3s1", "containerRuntimeVersion": "containerd://2.1.4-k3s1",
                     "operatingSystem": "linux", "architecture": "amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                     "kernelVersion": "6.1.0-40-amd64"},
    })
    disk_id = hashlib.sha256(LAB_NODE.encode()).hexdigest()[:16]
    disk_name = "default-disk-" + disk_id
    reserved = NODE_STORAGE_BYTES * 30 // 100     # storage-reserved-percentage-for-default-disk
    _ensure(store, store.registry.by_plural("nodes", "longhorn.io"), {
        "metadata": {"name": LAB_NODE, "namespace": LONGHORN_NAMESPACE},
        "spec": {"name": LAB_NODE, "allowScheduling": True, "evictionRequested": False, "tags": [], "instanceManagerCPURequest": 0,
                 "disks": {disk_name: {"path": "/var/lib/longhorn/", "allowScheduling": True, "evictionRequested": False,
                                       "storageReserved": reserved, "tags": [], "diskType": "filesystem", "diskDriver": ""}}},
    }, status={
        "conditions": [condition("Ready", "True", when=now), condition("Schedulable", "True", when=now),
                       condition("MountPropagation", "True", when=now), condition("RequiredPackages", "True", when=now),
                       condition("KernelModulesLoaded", "True", when=now), condition("Multipathd", "True", when=now),
                       condition("NFSClientInstalled", "True", when=now)],
        "diskStatus": {disk_name: {
            "conditions": [condition("Ready", "True", when=now), condition("Schedulable", "True", when=now)],
            "diskName": disk_name, "diskPath": "/var/lib/longhorn/", "diskType": "filesystem", "diskUUID": disk_id,
            "diskDriver": "", "filesystemType": "ext2/ext3", "instanceManagerName": "instance-manager-" + disk_id[:16],
            "storageMaximum": NODE_STORAGE_BYTES, "storageAvailable": NODE_STORAGE_BYTES - 10 * 1024 ** 3, "storageScheduled": 0,
            "scheduledReplica": {}, "scheduledBackingImage": {}}},
        "region": "", "zone": "", "autoEvicting": False,
        "snapshotCheckStatus": {},
    })
    image = lh_settings.engine_image(version)
    ei_name = "ei-" + hashlib.sha512(image.encode()).hexdigest()[:8]   # types.GetEngineImageChecksumName
    _ensure(store, store.registry.by_plural("engineimages", "longhorn.io"), {
        "metadata": {"name": ei_name, "namespace": LONGHORN_NAMESPACE, "labels": {"longhorn.io/component": "engine-image"}},
        "spec": {"image": image},
    }, status={
        "ownerID": LAB_NODE, "state": "deployed", "refCount": 0, "noRefSince": now, "incompatible": False,
        "conditions": [condition("ready", "True", when=now)], "nodeDeploymentMap": {LAB_NODE: True},
        "version": version, "gitCommit": hashlib.sha1(version.encode()).hexdigest()[:8], "buildDate": "2026-01-28T08:00:00+00:00",
        "cliAPIVersion": 10, "cliAPIMinVersion": 3, "controllerAPIVersion": 5, "controllerAPIMinVersion": 3,
        "dataFormatVersion": 1, "dataFormatMinVersion": 1,
    })


def _install_service(ctx):
    # ref §6: the REST API as Service longhorn-backend, port 9500 named "manager".
    _ensure(ctx.store, "services", {
        "metadata": {"name": "longhorn-backend", "namespace": LONGHORN_NAMESPACE,
                     "labels": dict(helm_labels(ctx.config.longhorn_version), app="longhorn-manager")},
        "spec": {"type": "ClusterIP", "selector": {"app": "longhorn-manager"}, "sessionAffinity": "ClientIP",
                 "ports": [{"name": "manager", "port": 9500, "targetPort": "manager", "protocol": "TCP"}]},
    })


def _install_default_backup_target(ctx):
    # ref §1.1/§1.2: the manager creates "default" from the (empty) default-resource ConfigMap, polling every 300 s.
    store = ctx.store
    _ensure(store, store.registry.by_plural("backuptargets", "longhorn.io"), {
        "metadata": {"name": DEFAULT_BACKUP_TARGET, "namespace": LONGHORN_NAMESPACE},
        "spec": {"backupTargetURL": "", "credentialSecret": "", "pollInterval": DEFAULT_POLL_INTERVAL, "syncRequestedAt": None},
    }, status={
        "ownerID": LAB_NODE, "available": False, "lastSyncedAt": None,
        "conditions": [condition("Unavailable", "True", "Unavailable", EMPTY_URL_MESSAGE)],
    })


def install_longhorn(ctx):
    """Install Longhorn into the lab cluster (idempotent)."""
    store = ctx.store
    if store.try_get("namespaces", "", LONGHORN_NAMESPACE) is None:
        store.create("namespaces", {"metadata": {"name": LONGHORN_NAMESPACE, "labels": {"kubernetes.io/metadata.name": LONGHORN_NAMESPACE}}})
    _install_crds(store)
    _install_configmaps(ctx)
    _install_settings(ctx)
    _install_storage_class(ctx)
    _install_nodes(ctx)
    _install_service(ctx)
    _install_default_backup_target(ctx)
