# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Defaulting, validation and admission of built-in kinds, as the collection meets them."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes.dynamic.exceptions import BadRequestError, ForbiddenError, UnprocessibleEntityError

from .test_api_support import api, deployment  # noqa: F401 pylint: disable=unused-import

MERGE = "application/merge-patch+json"
PVC_IMMUTABLE = "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"


def _causes(exc):
    return [(c["field"], c["message"]) for c in json.loads(exc.body)["details"]["causes"]]


def _pvc(name="data", storage="1Gi", storage_class=None, modes=("ReadWriteOnce",)):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": storage}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def _storage_class(name, default=False, expand=True):
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name, "annotations": annotations},
            "provisioner": "driver.longhorn.io", "allowVolumeExpansion": expand, "parameters": {"numberOfReplicas": "3"}}


# ---- PersistentVolumeClaim ------------------------------------------------------------
def test_pvc_requires_access_modes_and_storage(api):
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("v1", "PersistentVolumeClaim").create({"metadata": {"name": "c"}, "spec": {}}, namespace="default")
    assert _causes(caught.value) == [("spec.accessModes", "Required value: at least 1 access mode is required"),
                                     ("spec.resources[storage]", "Required value")]
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("v1", "PersistentVolumeClaim").create(_pvc(modes=("ReadWriteSometimes",)), namespace="default")
    assert _causes(caught.value)[0][1].startswith('Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany"')


def test_pvc_defaults_initial_status_and_default_storage_class(api):
    api.resource("storage.k8s.io/v1", "StorageClass").create(_storage_class("longhorn", default=True))
    claims = api.resource("v1", "PersistentVolumeClaim")
    created = claims.create(_pvc(), namespace="default")
    assert created.status.phase == "Pending"
    assert created.spec.volumeMode == "Filesystem" and created.spec.storageClassName == "longhorn"
    explicit = claims.create(_pvc("static", storage_class=""), namespace="default")
    assert explicit.spec.storageClassName == ""


def test_pvc_spec_is_immutable_and_resize_needs_a_bound_claim(api):
    api.resource("storage.k8s.io/v1", "StorageClass").create(_storage_class("longhorn"))
    api.resource("storage.k8s.io/v1", "StorageClass").create(_storage_class("fixed", expand=False))
    claims = api.resource("v1", "PersistentVolumeClaim")
    claims.create(_pvc(storage_class="longhorn"), namespace="default")
    with pytest.raises(UnprocessibleEntityError) as caught:
        claims.patch(body={"spec": {"accessModes": ["ReadWriteMany"]}}, name="data", namespace="default", content_type=MERGE)
    assert json.loads(caught.value.body)["message"] == 'PersistentVolumeClaim "data" is invalid: ' + PVC_IMMUTABLE
    with pytest.raises(UnprocessibleEntityError):
        claims.patch(body={"spec": {"resources": {"requests": {"storage": "2Gi"}}}}, name="data", namespace="default", content_type=MERGE)
    # The PV controller binds: volumeName may be set once, and the claim becomes Bound.
    claims.patch(body={"spec": {"volumeName": "pv-1"}}, name="data", namespace="default", content_type=MERGE)
    api.store.modify("persistentvolumeclaims", "default", "data",
                     lambda o: o.update(status={"phase": "Bound", "capacity": {"storage": "1Gi"}}), subresource="status")
    grown = claims.patch(body={"spec": {"resources": {"requests": {"storage": "2Gi"}}}}, name="data", namespace="default",
                         content_type=MERGE)
    assert grown.spec.resources.requests.storage == "2Gi"
    with pytest.raises(UnprocessibleEntityError) as caught:
        claims.patch(body={"spec": {"resources": {"requests": {"storage": "512Mi"}}}}, name="data", namespace="default",
                     content_type=MERGE)
    assert _causes(caught.value) == [("spec.resources.requests.storage", "Forbidden: field can not be less than status.capacity")]
    claims.create(_pvc("small", storage_class="fixed"), namespace="default")
    api.store.modify("persistentvolumeclaims", "default", "small", lambda o: o.update(status={"phase": "Bound"}), subresource="status")
    with pytest.raises(ForbiddenError) as forbidden:
        claims.patch(body={"spec": {"resources": {"requests": {"storage": "2Gi"}}}}, name="small", namespace="default",
                     content_type=MERGE)
    assert "only dynamically provisioned pvc can be resized" in json.loads(forbidden.value.body)["message"]


# ---- PersistentVolume -----------------------------------------------------------------------
def _pv(name="pv-1", **extra):
    spec = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": "driver.longhorn.io", "volumeHandle": name, "fsType": "ext4"}}
    spec.update(extra)
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def test_pv_validation_defaults_and_source_immutability(api):
    volumes = api.resource("v1", "PersistentVolume")
    created = volumes.create(_pv())
    assert created.status.phase == "Pending"
    assert created.spec.persistentVolumeReclaimPolicy == "Retain" and created.spec.volumeMode == "Filesystem"
    with pytest.raises(UnprocessibleEntityError) as caught:
        volumes.create({"metadata": {"name": "bare"}, "spec": {}})
    assert _causes(caught.value) == [("spec.capacity", "Required value"), ("spec.accessModes", "Required value"),
                                     ("spec", "Required value: must specify a volume type")]
    with pytest.raises(UnprocessibleEntityError) as caught:
        volumes.create(_pv("two", hostPath={"path": "/x"}))
    assert ("spec.hostPath", "Forbidden: may not specify more than 1 volume type") in _causes(caught.value)
    with pytest.raises(UnprocessibleEntityError) as caught:
        volumes.patch(body={"spec": {"csi": {"volumeHandle": "other"}}}, name="pv-1", content_type=MERGE)
    assert _causes(caught.value) == [("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource is immutable after creation")]
    bound = volumes.patch(body={"spec": {"claimRef": {"namespace": "default", "name": "data"}}}, name="pv-1", content_type=MERGE)
    assert bound.spec.claimRef.name == "data"


# ---- workloads ---------------------------------------------------------------------------------
def test_deployment_defaults_selector_match_and_immutability(api):
    deployments = api.resource("apps/v1", "Deployment")
    created = deployments.create(deployment("web"), namespace="default")
    assert created.spec.strategy.type == "RollingUpdate" and created.spec.revisionHistoryLimit == 10
    container = created.spec.template.spec.containers[0]
    assert container.imagePullPolicy == "IfNotPresent" and created.spec.template.spec.restartPolicy == "Always"
    bad = deployment("bad")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(UnprocessibleEntityError) as caught:
        deployments.create(bad, namespace="default")
    assert _causes(caught.value) == [("spec.template.metadata.labels",
                                      'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`')]
    with pytest.raises(UnprocessibleEntityError) as caught:
        deployments.patch(body={"spec": {"selector": {"matchLabels": {"app": "web", "x": "y"}},
                                         "template": {"metadata": {"labels": {"app": "web", "x": "y"}}}}},
                          name="web", namespace="default", content_type=MERGE)
    assert _causes(caught.value)[0][0] == "spec.selector" and _causes(caught.value)[0][1].endswith("field is immutable")
    scaled = deployments.patch(body={"spec": {"replicas": 3}}, name="web", namespace="default", content_type=MERGE)
    assert scaled.spec.replicas == 3


def test_statefulset_spec_is_immutable_except_allowed_fields(api):
    sts = deployment("db")
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                                                   "resources": {"requests": {"storage": "1Gi"}}}}]
    statefulsets = api.resource("apps/v1", "StatefulSet")
    created = statefulsets.create(sts, namespace="default")
    assert created.spec.podManagementPolicy == "OrderedReady"
    assert created.spec.persistentVolumeClaimRetentionPolicy.whenDeleted == "Retain"
    assert created.spec.volumeClaimTemplates[0].spec.volumeMode == "Filesystem"
    statefulsets.patch(body={"spec": {"replicas": 0, "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.28"}]}}}},
                       name="db", namespace="default")
    with pytest.raises(UnprocessibleEntityError) as caught:
        statefulsets.patch(body={"spec": {"serviceName": "other"}}, name="db", namespace="default", content_type=MERGE)
    assert _causes(caught.value) == [("spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                      "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
                                      "are forbidden")]


def test_pod_containers_need_a_name_and_an_image(api):
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("v1", "Pod").create({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}, namespace="default")
    assert _causes(caught.value) == [("spec.containers[0].image", "Required value")]


# ---- Secrets, ConfigMaps, StorageClasses, Namespaces, metadata ------------------------------------
def test_secret_data_must_be_base64_and_string_data_is_merged(api):
    secrets = api.resource("v1", "Secret")
    with pytest.raises(BadRequestError) as caught:
        secrets.create({"metadata": {"name": "bad"}, "data": {"key": "not base64!"}}, namespace="default")
    assert json.loads(caught.value.body)["message"] == ('Secret in version "v1" cannot be handled as a Secret: '
                                                        "illegal base64 data at input byte 3")
    created = secrets.create({"metadata": {"name": "s"}, "data": {"a": base64.b64encode(b"one").decode()},
                              "stringData": {"b": "two"}}, namespace="default")
    assert created.type == "Opaque" and "stringData" not in created.to_dict()
    assert {k: base64.b64decode(v).decode() for k, v in created.data.to_dict().items()} == {"a": "one", "b": "two"}


def test_immutable_configmaps_and_secrets(api):
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.create({"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": True}, namespace="default")
    with pytest.raises(UnprocessibleEntityError) as caught:
        configmaps.patch(body={"data": {"a": "2"}}, name="frozen", namespace="default", content_type=MERGE)
    assert _causes(caught.value) == [("data", "Forbidden: field is immutable when `immutable` is set")]
    configmaps.patch(body={"metadata": {"labels": {"ok": "yes"}}}, name="frozen", namespace="default", content_type=MERGE)


def test_storage_class_parameters_and_provisioner_are_immutable(api):
    classes = api.resource("storage.k8s.io/v1", "StorageClass")
    created = classes.create(_storage_class("longhorn"))
    assert created.reclaimPolicy == "Delete" and created.volumeBindingMode == "Immediate"
    with pytest.raises(UnprocessibleEntityError) as caught:
        classes.patch(body={"parameters": {"numberOfReplicas": "1"}, "provisioner": "other"}, name="longhorn", content_type=MERGE)
    assert _causes(caught.value) == [("parameters", "Forbidden: updates to parameters are forbidden."),
                                     ("provisioner", "Forbidden: updates to provisioner are forbidden.")]
    classes.patch(body={"allowVolumeExpansion": False}, name="longhorn", content_type=MERGE)


def test_namespace_names_and_label_values_are_validated(api):
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("v1", "Namespace").create({"metadata": {"name": "Bad_Name"}})
    field, message = _causes(caught.value)[0]
    assert field == "metadata.name" and message.startswith('Invalid value: "Bad_Name": a lowercase RFC 1123 label must consist of')
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("v1", "ConfigMap").create({"metadata": {"name": "cm", "labels": {"when": "2025-01-01T00:00:00Z"}}},
                                               namespace="default")
    field, message = _causes(caught.value)[0]
    assert field == "metadata.labels" and message.startswith('Invalid value: "2025-01-01T00:00:00Z": a valid label must be an empty string')


def test_crd_name_must_be_plural_dot_group(api):
    crd = {"metadata": {"name": "wrong.lab.example.com"},
           "spec": {"group": "lab.example.com", "scope": "Namespaced", "names": {"kind": "Thing", "plural": "things"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").create(crd)
    assert _causes(caught.value) == [("metadata.name", 'Invalid value: "wrong.lab.example.com": must be spec.names.plural+"."+spec.group')]
