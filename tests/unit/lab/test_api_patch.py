# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PATCH: JSON merge, JSON patch, strategic merge (and 415 on custom resources), server-side apply."""

from __future__ import annotations

import json

import pytest
from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, UnprocessibleEntityError

from tests.lab.kube import patch
from tests.lab.kube.resources import Registry

from .test_api_support import api, configmap, deployment, widget  # noqa: F401 pylint: disable=unused-import

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def _message(exc):
    return json.loads(exc.body)["message"]


# ---- merge and JSON patch -----------------------------------------------------------
def test_merge_patch_follows_rfc7386():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    result = patch.merge_patch(target, {"a": "z", "c": {"f": None}, "list": [3], "new": {"x": 1}})
    assert result == {"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}}
    assert target["c"] == {"d": "e", "f": "g"}


def test_merge_patch_over_http_and_resource_version_precondition(api):
    configmaps = api.resource("v1", "ConfigMap")
    created = configmaps.create(configmap("cm", data={"a": "1", "b": "2"}), namespace="default")
    patched = configmaps.patch(body={"data": {"a": None, "c": "3"}}, name="cm", namespace="default", content_type=MERGE)
    assert patched.data.to_dict() == {"b": "2", "c": "3"}
    with pytest.raises(ConflictError):
        configmaps.patch(body={"metadata": {"resourceVersion": created.metadata.resourceVersion}, "data": {"d": "4"}},
                         name="cm", namespace="default", content_type=MERGE)
    current = patched.metadata.resourceVersion
    ok = configmaps.patch(body={"metadata": {"resourceVersion": current}, "data": {"d": "4"}}, name="cm", namespace="default",
                          content_type=MERGE)
    assert ok.data.d == "4"


def test_json_patch_and_failed_test_operation(api):
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.create(configmap("cm", data={"a": "1"}), namespace="default")
    patched = configmaps.patch(body=[{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}],
                               name="cm", namespace="default", content_type=JSON_PATCH)
    assert patched.data.to_dict() == {"b": "2"}
    with pytest.raises(UnprocessibleEntityError) as caught:
        configmaps.patch(body=[{"op": "test", "path": "/data/b", "value": "other"}, {"op": "replace", "path": "/data/b", "value": "3"}],
                         name="cm", namespace="default", content_type=JSON_PATCH)
    assert json.loads(caught.value.body)["details"]["causes"][0]["reason"] == "UnexpectedServerResponse"
    assert api.store.get("configmaps", "default", "cm")["data"] == {"b": "2"}
    # (The kubernetes client turns a non-list JSON patch into a strategic merge patch, so send it raw.)
    status, _headers, body = api.raw("PATCH", "/api/v1/namespaces/default/configmaps/cm", {"op": "add"},
                                     headers={"Content-Type": JSON_PATCH})
    assert status == 400 and body["reason"] == "BadRequest"


# ---- strategic merge patch ------------------------------------------------------------
def test_strategic_merge_uses_patch_merge_keys():
    list_types = patch.BuiltinListTypes("Deployment")
    original = {
        "metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "1", "name": "x"}]},
        "spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "name": "http"}], "args": ["--x"]},
                           {"name": "sidecar", "image": "s1"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }}},
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }
    result = patch.strategic_merge_patch(original, {
        "metadata": {"finalizers": ["b", "a"]},
        "spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "v2",
                            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "$patch": "delete"}],
                            "ports": [{"containerPort": 443}], "args": ["--y"]},
                           {"name": "sidecar", "$patch": "delete"}],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        }}},
        "status": {"conditions": [{"type": "Progressing", "status": "True"}]},
    }, list_types)
    spec = result["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app"]
    app = spec["containers"][0]
    assert app["image"] == "v2" and app["args"] == ["--y"]
    assert app["env"] == [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert [p["containerPort"] for p in app["ports"]] == [80, 443]
    assert [v["name"] for v in spec["volumes"]] == ["data", "cache"]
    assert result["metadata"]["finalizers"] == ["a", "b"]
    assert [c["type"] for c in result["status"]["conditions"]] == ["Available", "Progressing"]


def test_strategic_merge_replace_and_primitive_list_directives():
    list_types = patch.BuiltinListTypes("Pod")
    original = {"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
                "spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}
    result = patch.strategic_merge_patch(original, {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"$patch": "replace", "z": "3"}},
        "spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "3"}]},
    }, list_types)
    assert result["metadata"] == {"finalizers": ["b"], "labels": {"z": "3"}}
    assert result["spec"]["containers"] == [{"name": "c", "image": "3"}]


def test_strategic_merge_over_http_on_a_deployment(api):
    deployments = api.resource("apps/v1", "Deployment")
    deployments.create(deployment("web"), namespace="default")
    patched = deployments.patch(body={"spec": {"template": {"spec": {"containers": [
        {"name": "app", "env": [{"name": "B", "value": "2"}]}]}}}}, name="web", namespace="default")
    container = patched.spec.template.spec.containers[0]
    assert container.image == "nginx:1.27"
    assert [(e.name, e.value) for e in container.env] == [("A", "1"), ("B", "2")]


def test_strategic_merge_on_a_custom_resource_is_415_and_merge_works(api):
    widgets = api.resource("lab.example.com/v1beta2", "Widget")
    widgets.create(widget("w"), namespace="default")
    with pytest.raises(DynamicApiError) as caught:
        widgets.patch(body={"spec": {"frontend": "iscsi"}}, name="w", namespace="default", content_type=STRATEGIC)
    assert caught.value.status == 415
    body = json.loads(caught.value.body)
    assert body["reason"] == "UnsupportedMediaType"
    assert body["message"] == ("the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
    # What kubernetes.core does next (K8sService.update tries strategic-merge, then merge):
    patched = widgets.patch(body={"spec": {"frontend": "iscsi"}}, name="w", namespace="default", content_type=MERGE)
    assert patched.spec.frontend == "iscsi" and patched.spec.size == "1073741824"


def test_unsupported_patch_content_type_is_415(api):
    api.store.create("configmaps", configmap("cm"))
    status, _headers, body = api.raw("PATCH", "/api/v1/namespaces/default/configmaps/cm", {"data": {}},
                                     headers={"Content-Type": "application/yaml"})
    assert status == 415 and "application/strategic-merge-patch+json" in body["message"]


# ---- managedFields for ordinary writes ----------------------------------------------------------
def test_updates_record_managed_fields_per_manager(api):
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.create(configmap("cm", data={"a": "1"}), namespace="default", field_manager="creator")
    configmaps.patch(body={"data": {"b": "2"}}, name="cm", namespace="default", content_type=MERGE, field_manager="editor")
    entries = {e["manager"]: e for e in api.store.get("configmaps", "default", "cm")["metadata"]["managedFields"]}
    assert entries["creator"]["operation"] == "Update"
    assert entries["creator"]["fieldsV1"] == {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {}}}
    assert entries["editor"]["fieldsV1"] == {"f:data": {"f:b": {}}}
    before = api.store.get("configmaps", "default", "cm")
    configmaps.patch(body={"data": {"b": "2"}}, name="cm", namespace="default", content_type=MERGE, field_manager="editor")
    after = api.store.get("configmaps", "default", "cm")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["managedFields"] == before["metadata"]["managedFields"]


# ---- server-side apply -------------------------------------------------------------------------------
def _apply(api, body, manager="ansible", force=None, **kwargs):
    resource = api.resource(body["apiVersion"], body["kind"])
    return resource.server_side_apply(body=body, name=body["metadata"]["name"], namespace=body["metadata"].get("namespace"),
                                      field_manager=manager, force_conflicts=force, **kwargs)


def test_server_side_apply_creates_updates_and_is_idempotent(api):
    body = configmap("applied", data={"a": "1", "b": "2"})
    created = _apply(api, body)
    assert created.data.to_dict() == {"a": "1", "b": "2"}
    entry = created.metadata.managedFields[0]
    assert (entry.manager, entry.operation) == ("ansible", "Apply")
    assert entry.fieldsV1.to_dict()["f:data"] == {"f:a": {}, "f:b": {}}
    again = _apply(api, body)
    assert again.metadata.resourceVersion == created.metadata.resourceVersion
    # Fields this manager stops applying are removed.
    body["data"] = {"a": "1"}
    shrunk = _apply(api, body)
    assert shrunk.data.to_dict() == {"a": "1"}


def test_server_side_apply_conflicts_with_another_manager_unless_forced(api):
    _apply(api, configmap("shared", data={"a": "1"}), manager="first")
    with pytest.raises(ConflictError) as caught:
        _apply(api, configmap("shared", data={"a": "2"}), manager="second")
    body = json.loads(caught.value.body)
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "first": .data.a'
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "first"', "field": ".data.a"}]
    # The same value is shared ownership, not a conflict.
    _apply(api, configmap("shared", data={"a": "1"}), manager="second")
    forced = _apply(api, configmap("shared", data={"a": "2"}), manager="second", force=True)
    assert forced.data.a == "2"
    owners = {e.manager: e.fieldsV1.to_dict() for e in forced.metadata.managedFields}
    assert "f:a" in owners["second"]["f:data"] and "f:data" not in owners.get("first", {})


def test_server_side_apply_conflicts_with_an_update_manager(api):
    api.resource("v1", "ConfigMap").create(configmap("made", data={"a": "1"}), namespace="default")
    with pytest.raises(ConflictError) as caught:
        _apply(api, configmap("made", data={"a": "2"}))
    assert '"OpenAPI-Generator" using v1' in _message(caught.value)


def test_server_side_apply_merges_lists_by_key_and_keeps_others_fields(api):
    dep = deployment("web")
    _apply(api, dep, manager="base")
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}}
    merged = _apply(api, sidecar, manager="sidecar-injector")
    assert [c.name for c in merged.spec.template.spec.containers] == ["app", "sidecar"]
    assert merged.spec.replicas == 1


def test_server_side_apply_needs_a_field_manager_and_rejects_force_elsewhere(api):
    api.store.create("configmaps", configmap("cm"))
    status, _headers, body = api.raw("PATCH", "/api/v1/namespaces/default/configmaps/cm", configmap("cm"),
                                     headers={"Content-Type": "application/apply-patch+yaml"})
    assert status == 422 and "fieldManager: Required value" in body["message"]
    status, _headers, body = api.raw("PATCH", "/api/v1/namespaces/default/configmaps/cm?force=true", {"data": {}},
                                     headers={"Content-Type": MERGE})
    assert status == 422 and "force: Forbidden" in body["message"]


def test_server_side_apply_accepts_yaml_and_dry_run(api):
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  namespace: default\ndata:\n  k: v\n"
    status, _headers, body = api.raw("PATCH", "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=kubectl&dryRun=All",
                                     yaml_body, headers={"Content-Type": "application/apply-patch+yaml"})
    assert status == 201 and body["data"] == {"k": "v"}
    assert api.store.try_get("configmaps", "default", "from-yaml") is None
    status, _headers, body = api.raw("PATCH", "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=kubectl",
                                     yaml_body, headers={"Content-Type": "application/apply-patch+yaml"})
    assert status == 201 and api.store.get("configmaps", "default", "from-yaml")["data"] == {"k": "v"}


def test_server_side_apply_of_a_custom_resource_status_is_ignored_on_the_main_resource(api):
    body = widget("w", frontend="blockdev")
    body["status"] = {"state": "attached"}
    created = _apply(api, body)
    assert "status" not in created.to_dict() and created.spec.dataEngine == "v1"


def test_list_types_from_a_crd_schema():
    registry = Registry()
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "disks": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}, "tags": {
                      "type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}},
        "plain": {"type": "array", "items": {"type": "string"}}}}}}
    del registry
    list_types = patch.SchemaListTypes(schema)
    assert list_types.strategy(("spec", "disks")) == ("map", "name")
    assert list_types.strategy(("spec", "disks", "tags")) == ("set", None)
    assert list_types.strategy(("spec", "plain")) is None
    assert list_types.strategy(("metadata", "finalizers")) == ("set", None)
