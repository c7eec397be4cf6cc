# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Longhorn CSI driver: dynamic provisioning, deletion and attachment tickets.

On a real control plane (one per test): kube-controller-manager binds and attaches, the lab's
provisioner and external attacher answer for driver.longhorn.io (see k8s_env).
"""

from __future__ import annotations

import hashlib

import pytest

from tests.lab.context import LONGHORN_NAMESPACE
from tests.lab.controllers import csi
from tests.lab.longhorn import attachments

from .k8s_env import LONGHORN_STORAGE_CLASS, KubeEnv, longhorn_volume, pvc, static_pv


# The annotations the PV controller and external-provisioner write (k8s.io/component-helpers, sig-storage-lib-external-provisioner).
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"


@pytest.fixture
def env(seeded_cluster):
    running = KubeEnv(seeded_cluster).start()
    yield running
    running.stop()


def _claim(env, name):
    return env.get("persistentvolumeclaims", "default", name)


def _pod(name, claim, namespace="default"):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {
        "containers": [{"name": "app", "image": "busybox:1.36", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def test_attachment_id_is_kubernetes_volume_attachment_name():
    expected = "csi-" + hashlib.sha256(b"pvc-1driver.longhorn.iolab-node-1").hexdigest()
    assert csi.attachment_id("pvc-1", "lab-node-1") == expected


def test_claim_of_longhorn_class_gets_a_new_volume_and_pv(env):
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn"))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="provisioned and bound")
    env.settle()
    claim = _claim(env, "data")
    name = "pvc-" + claim["metadata"]["uid"]
    assert claim["spec"]["volumeName"] == name
    assert claim["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] == "driver.longhorn.io"
    assert claim["metadata"]["annotations"][ANN_BETA_STORAGE_PROVISIONER] == "driver.longhorn.io"
    assert claim["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert claim["status"]["capacity"] == {"storage": "1Gi"}

    volume = env.longhorn_volume(name)
    assert volume["metadata"]["namespace"] == LONGHORN_NAMESPACE
    spec = volume["spec"]
    assert spec["size"] == str(1024 ** 3)
    assert (spec["numberOfReplicas"], spec["staleReplicaTimeout"]) == (3, 30)
    assert (spec["frontend"], spec["accessMode"], spec["dataEngine"]) == ("blockdev", "rwo", "v1")
    assert spec["dataLocality"] == "disabled"

    pv = env.get("persistentvolumes", "", name)
    assert pv["metadata"]["annotations"][ANN_DYNAMICALLY_PROVISIONED] == "driver.longhorn.io"
    assert ANN_BOUND_BY_CONTROLLER not in pv["metadata"]["annotations"]
    assert pv["spec"]["csi"]["driver"] == "driver.longhorn.io"
    assert pv["spec"]["csi"]["volumeHandle"] == name
    assert pv["spec"]["csi"]["fsType"] == "ext4"
    attributes = pv["spec"]["csi"]["volumeAttributes"]
    assert attributes["numberOfReplicas"] == "3" and attributes["staleReplicaTimeout"] == "30"
    assert attributes[csi.ANN_PROVISIONER_IDENTITY].endswith("-driver.longhorn.io")
    assert pv["spec"]["capacity"] == {"storage": "1Gi"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["storageClassName"] == "longhorn"
    assert pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert pv["status"]["phase"] == "Bound"


@pytest.mark.parametrize("request_size, volume_size, capacity", [
    ("1G", 1000341504, "954Mi"),          # rounded up to 2 MiB
    ("1Mi", 10 * 1024 ** 2, "10Mi"),      # at least MinimalVolumeSize
])
def test_provisioned_size_follows_longhorn_rounding(env, request_size, volume_size, capacity):
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn", size=request_size))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="bound")
    claim = _claim(env, "data")
    assert env.longhorn_volume(claim["spec"]["volumeName"])["spec"]["size"] == str(volume_size)
    assert claim["status"]["capacity"] == {"storage": capacity}


def test_read_write_many_claim_makes_a_shared_volume(env):
    env.store.create("persistentvolumeclaims", pvc("shared", storage_class="longhorn", access_modes=("ReadWriteMany",)))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "shared") == "Bound", what="bound")
    name = _claim(env, "shared")["spec"]["volumeName"]
    assert env.longhorn_volume(name)["spec"]["accessMode"] == "rwx"
    assert env.get("persistentvolumes", "", name)["spec"]["csi"]["volumeAttributes"]["share"] == "true"


def test_available_static_pv_of_the_class_wins_over_provisioning(env):
    env.store.create("persistentvolumes", static_pv("restored", storage_class="longhorn"))
    env.wait_for(lambda: env.phase("persistentvolumes", "", "restored") == "Available", what="Available")
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn"))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="bound")
    env.settle()
    assert _claim(env, "data")["spec"]["volumeName"] == "restored"
    rtype = env.store.registry.by_plural("volumes", "longhorn.io")
    assert env.store.list(rtype)[0] == []


def test_wait_for_first_consumer_provisions_when_a_pod_arrives(env):
    lazy = dict(LONGHORN_STORAGE_CLASS, metadata={"name": "longhorn-lazy"}, volumeBindingMode="WaitForFirstConsumer")
    env.store.create("storageclasses", lazy)
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn-lazy"))
    env.settle()
    assert env.phase("persistentvolumeclaims", "default", "data") == "Pending"
    assert env.store.list(env.store.registry.by_plural("volumes", "longhorn.io"))[0] == []
    env.store.create("pods", _pod("app", "data"))
    env.wait_for(lambda: env.phase("pods", "default", "app") == "Running", what="pod Running")
    claim = _claim(env, "data")
    assert claim["metadata"]["annotations"][ANN_SELECTED_NODE] == "lab-node-1"
    assert claim["status"]["phase"] == "Bound"


def test_deleting_the_claim_deletes_a_provisioned_volume_and_pv(env):
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn"))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="bound")
    name = _claim(env, "data")["spec"]["volumeName"]
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.wait_for(lambda: env.get("persistentvolumes", "", name) is None, what="PV deleted")
    assert env.longhorn_volume(name) is None


def test_static_longhorn_pv_with_delete_policy_is_deleted_with_its_volume(env):
    rtype = env.store.registry.by_plural("volumes", "longhorn.io")
    env.store.create(rtype, longhorn_volume("restored-vol"))
    env.store.create("persistentvolumes", static_pv("restored", volume_handle="restored-vol", policy="Delete"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="restored"))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="bound")
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.wait_for(lambda: env.get("persistentvolumes", "", "restored") is None, what="PV deleted")
    assert env.longhorn_volume("restored-vol") is None


def test_retained_static_pv_keeps_its_volume(env):
    rtype = env.store.registry.by_plural("volumes", "longhorn.io")
    env.store.create(rtype, longhorn_volume("kept-vol"))
    env.store.create("persistentvolumes", static_pv("kept", volume_handle="kept-vol"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="kept"))
    env.wait_for(lambda: env.phase("persistentvolumeclaims", "default", "data") == "Bound", what="bound")
    env.store.delete("persistentvolumeclaims", "default", "data")
    env.wait_for(lambda: env.phase("persistentvolumes", "", "kept") == "Released", what="Released")
    env.settle()
    assert env.longhorn_volume("kept-vol") is not None


def test_pod_gets_an_attachment_ticket_that_goes_with_the_pod(env):
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn"))
    env.store.create("pods", _pod("app", "data"))
    env.wait_for(lambda: env.phase("pods", "default", "app") == "Running", what="pod Running")
    volume = _claim(env, "data")["spec"]["volumeName"]
    ticket_id = csi.attachment_id(volume, "lab-node-1")
    tickets = attachments.tickets(env.store, volume)
    assert tickets == {ticket_id: {"id": ticket_id, "type": "csi-attacher", "nodeID": "lab-node-1", "generation": 0,
                                   "parameters": {"disableFrontend": "false"}}}
    env.wait_for(lambda: (env.get("volumeattachments", "", ticket_id) or {}).get("status", {}).get("attached"),
                 what="storage.k8s.io VolumeAttachment attached")
    attachment = env.get("volumeattachments", "", ticket_id)
    assert attachment["spec"] == {"attacher": "driver.longhorn.io", "nodeName": "lab-node-1", "source": {"persistentVolumeName": volume}}
    pod = env.get("pods", "default", "app")
    assert pod["spec"]["nodeName"] == "lab-node-1"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"

    env.store.delete("pods", "default", "app")
    env.wait_for(lambda: not attachments.tickets(env.store, volume), what="ticket removed")
    env.wait_for(lambda: env.get("volumeattachments", "", ticket_id) is None, what="VolumeAttachment removed")
    env.wait_for(lambda: env.longhorn_volume(volume)["status"]["state"] == "detached", what="volume detached")


def test_two_pods_on_the_node_share_one_ticket(env):
    env.store.create("persistentvolumeclaims", pvc("data", storage_class="longhorn"))
    env.store.create("pods", _pod("one", "data"))
    env.store.create("pods", _pod("two", "data"))
    env.wait_for(lambda: env.phase("pods", "default", "one") == "Running" and env.phase("pods", "default", "two") == "Running",
                 what="both Running")
    volume = _claim(env, "data")["spec"]["volumeName"]
    env.store.delete("pods", "default", "one")
    env.settle()
    assert list(attachments.tickets(env.store, volume)) == [csi.attachment_id(volume, "lab-node-1")]
    env.store.delete("pods", "default", "two")
    env.wait_for(lambda: not attachments.tickets(env.store, volume), what="ticket removed")


def test_pod_waits_while_its_longhorn_volume_is_missing(env):
    env.store.create("persistentvolumes", static_pv("orphan", volume_handle="not-a-volume"))
    env.store.create("persistentvolumeclaims", pvc("data", volume_name="orphan"))
    env.store.create("pods", _pod("app", "data"))
    env.wait_for(lambda: env.get("pods", "default", "app")["spec"].get("nodeName"), what="scheduled")
    env.settle(timeout=5)
    pod = env.get("pods", "default", "app")
    assert pod["status"]["phase"] == "Pending"
    # The node agent may add why it waits (the attachment not yet there); the reason is what matters.
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    # Once the volume exists the attach goes through.
    env.store.create(env.store.registry.by_plural("volumes", "longhorn.io"), longhorn_volume("not-a-volume"))
    env.wait_for(lambda: env.phase("pods", "default", "app") == "Running", timeout=5, what="Running after the volume appeared")


def test_deleting_a_namespace_releases_and_deletes_its_provisioned_volumes(env):
    env.store.create("namespaces", {"metadata": {"name": "app"}})
    env.store.create("persistentvolumeclaims", pvc("data", namespace="app", storage_class="longhorn"))
    env.store.create("pods", _pod("app", "data", namespace="app"))
    env.wait_for(lambda: env.phase("pods", "app", "app") == "Running", what="pod Running")
    volume = env.get("persistentvolumeclaims", "app", "data")["spec"]["volumeName"]
    env.store.delete("namespaces", "", "app")
    # The namespace controller waits for the pod's graceful deletion on the node, then the claim's protection.
    env.wait_for(lambda: env.get("namespaces", "", "app") is None, timeout=90, what="namespace gone (pvc-protection released)")
    env.wait_for(lambda: env.get("persistentvolumes", "", volume) is None, what="PV deleted")
    assert env.longhorn_volume(volume) is None
    assert not attachments.tickets(env.store, volume)
