# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Custom resources against their CRD schema: 422 messages, pruning, defaults, fieldValidation, ratcheting."""

from __future__ import annotations

import copy
import json
import pathlib

import pytest
from kubernetes.dynamic.exceptions import BadRequestError, UnprocessibleEntityError

from tests.lab.kube import schema
from tests.lab.longhorn import load_manifest

from .test_api_support import WIDGET_CRD, api, widget  # noqa: F401 pylint: disable=unused-import

WIDGET_SCHEMA = WIDGET_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
LONGHORN_CRDS = pathlib.Path(__file__).resolve().parents[2] / "lab" / "longhorn" / "crds.yaml"


def _invalid(api, body):
    with pytest.raises(UnprocessibleEntityError) as caught:
        api.resource("lab.example.com/v1beta2", "Widget").create(body, namespace="default")
    return json.loads(caught.value.body)


def test_bad_enum_is_422_with_the_kubernetes_message(api):
    status = _invalid(api, widget("w", frontend="bogus"))
    assert status["reason"] == "Invalid" and status["code"] == 422
    assert status["message"] == ('Widget.lab.example.com "w" is invalid: spec.frontend: Unsupported value: "bogus": '
                                 'supported values: "blockdev", "iscsi", "nvmf", "ublk", ""')
    assert status["details"]["causes"] == [{"reason": "FieldValueNotSupported", "field": "spec.frontend",
                                            "message": 'Unsupported value: "bogus": supported values: "blockdev", "iscsi", "nvmf", "ublk", ""'}]
    assert status["details"]["group"] == "lab.example.com" and status["details"]["kind"] == "Widget"
    assert api.store.try_get("widgets", "default", "w") is None


@pytest.mark.parametrize("spec, field, reason, message", [
    ({"size": None}, "spec.size", "FieldValueRequired", "Required value"),
    ({"replicas": "three"}, "spec.replicas", "FieldValueTypeInvalid",
     'Invalid value: "string": spec.replicas in body must be of type integer: "string"'),
    ({"replicas": 1.5}, "spec.replicas", "FieldValueTypeInvalid",
     'Invalid value: "number": spec.replicas in body must be of type integer: "number"'),
    ({"replicas": 0}, "spec.replicas", "FieldValueInvalid", "Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
    ({"replicas": 21}, "spec.replicas", "FieldValueInvalid", "Invalid value: 21: spec.replicas in body should be less than or equal to 20"),
    ({"name": "UPPER"}, "spec.name", "FieldValueInvalid", "Invalid value: \"UPPER\": spec.name in body should match '^[a-z]+$'"),
    ({"name": "waytoolongname"}, "spec.name", "FieldValueTooLong", "Too long: may not be more than 10 bytes"),
    ({"createdAt": "yesterday"}, "spec.createdAt", "FieldValueTypeInvalid",
     'Invalid value: "yesterday": spec.createdAt in body must be of type date-time: "yesterday"'),
    ({"budget": True}, "spec.budget", "FieldValueTypeInvalid",
     'Invalid value: "boolean": spec.budget in body must be of type integer,string: "boolean"'),
    ({"size": 1073741824}, "spec.size", "FieldValueTypeInvalid",
     'Invalid value: "integer": spec.size in body must be of type string: "integer"'),
    ({"tags": ["a", "a"]}, "spec.tags[1]", "FieldValueDuplicate", 'Duplicate value: "a"'),
    ({"labels": {"k": 1}}, "spec.labels.k", "FieldValueTypeInvalid", 'Invalid value: "integer": spec.labels.k in body must be of type string: "integer"'),
])
def test_schema_violations(api, spec, field, reason, message):
    body = widget("w")
    body["spec"].update(spec)
    if body["spec"].get("size") is None:
        del body["spec"]["size"]
    status = _invalid(api, body)
    assert status["details"]["causes"] == [{"reason": reason, "field": field, "message": message}]
    assert status["message"] == 'Widget.lab.example.com "w" is invalid: %s: %s' % (field, message)


def test_valid_values_pass(api):
    body = widget("w", replicas=3, budget="50%", createdAt="2025-01-02T03:04:05Z", tags=["a", "b"],
                  labels=None, frontend="", nodeSelector=["n1"])
    body["spec"]["name"] = "abc"
    created = api.resource("lab.example.com/v1beta2", "Widget").create(body, namespace="default")
    assert created.spec.budget == "50%" and created.spec.labels is None
    body = widget("w2", budget=5, replicas=2.0)
    assert api.resource("lab.example.com/v1beta2", "Widget").create(body, namespace="default").spec.budget == 5


def test_unknown_fields_are_pruned_with_a_warning(api):
    body = widget("w", bogus="dropped", extra={"anything": {"goes": 1}})
    body["topLevel"] = 1
    body["metadata"]["unknownMeta"] = "x"
    status, headers, created = api.raw("POST", "/apis/lab.example.com/v1beta2/namespaces/default/widgets", body)
    assert status == 201
    assert "bogus" not in created["spec"] and "topLevel" not in created and "unknownMeta" not in created["metadata"]
    assert created["spec"]["extra"] == {"anything": {"goes": 1}}
    warnings = headers.get_all("Warning")
    assert '299 - "unknown field \\"spec.bogus\\""' in warnings and '299 - "unknown field \\"topLevel\\""' in warnings
    stored = api.store.get("widgets", "default", "w")
    assert "bogus" not in stored["spec"] and stored["spec"]["dataEngine"] == "v1"


def test_field_validation_strict_refuses_unknown_fields(api):
    status, _headers, body = api.raw("POST", "/apis/lab.example.com/v1beta2/namespaces/default/widgets?fieldValidation=Strict",
                                     widget("w", bogus=1))
    assert status == 400
    assert body["message"] == 'Widget in version "v1beta2" cannot be handled as a Widget: strict decoding error: unknown field "spec.bogus"'
    status, headers, _body = api.raw("POST", "/apis/lab.example.com/v1beta2/namespaces/default/widgets?fieldValidation=Ignore",
                                     widget("w", bogus=1))
    assert status == 201 and headers.get_all("Warning") is None


def test_merge_patch_of_a_custom_resource_is_validated_and_pruned(api):
    widgets = api.resource("lab.example.com/v1beta2", "Widget")
    widgets.create(widget("w"), namespace="default")
    with pytest.raises(UnprocessibleEntityError):
        widgets.patch(body={"spec": {"frontend": "bogus"}}, name="w", namespace="default", content_type="application/merge-patch+json")
    patched = widgets.patch(body={"spec": {"frontend": "iscsi", "bogus": 1}}, name="w", namespace="default",
                            content_type="application/merge-patch+json")
    assert patched.spec.frontend == "iscsi" and "bogus" not in patched.spec.to_dict()
    with pytest.raises(BadRequestError):
        widgets.patch(body={"spec": {"bogus": 1}}, name="w", namespace="default", content_type="application/merge-patch+json",
                      query_params=[("fieldValidation", "Strict")])


def test_null_for_a_non_nullable_field_is_dropped_and_defaulted():
    obj = {"apiVersion": "lab.example.com/v1beta2", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"size": "1", "dataEngine": None, "frontend": None, "labels": None}}
    removed = schema.prune(obj, WIDGET_SCHEMA)
    schema.apply_defaults(obj, WIDGET_SCHEMA)
    assert removed == []
    assert obj["spec"] == {"size": "1", "dataEngine": "v1", "labels": None}
    assert schema.validate(obj, WIDGET_SCHEMA) == []


def test_prune_walks_arrays_additional_properties_and_embedded_resources():
    node = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"b": {"type": "string"}}}},
        "embedded": {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
    }}
    obj = {"items": [{"a": "1", "z": 2}], "map": {"k": {"b": "x", "y": 1}}, "embedded": {"apiVersion": "v1", "kind": "Pod", "spec": {}}}
    removed = schema.prune(obj, node)
    assert sorted(removed) == ["items[0].z", "map.k.y"]
    assert obj == {"items": [{"a": "1"}], "map": {"k": {"b": "x"}}, "embedded": {"apiVersion": "v1", "kind": "Pod", "spec": {}}}
    assert schema.unknown_fields({"items": [{"q": 1}]}, node) == ["items[0].q"]


def test_validation_ratchets_unchanged_values():
    old = {"spec": {"size": "1", "frontend": "legacy-value"}}
    still_bad = copy.deepcopy(old)
    still_bad["spec"]["replicas"] = 2
    assert schema.validate(still_bad, WIDGET_SCHEMA, old) == []
    changed = copy.deepcopy(old)
    changed["spec"]["frontend"] = "other-bad"
    assert [c[0] for c in schema.validate(changed, WIDGET_SCHEMA, old)] == ["spec.frontend"]
    assert [c[0] for c in schema.validate(still_bad, WIDGET_SCHEMA)] == ["spec.frontend"]


def test_changing_a_crd_schema_through_the_api_takes_effect(api):
    crds = api.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    crd = crds.get(name="widgets.lab.example.com").to_dict()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["frontend"]["enum"].append("bogus")
    crds.replace(crd)
    created = api.resource("lab.example.com/v1beta2", "Widget").create(widget("w", frontend="bogus"), namespace="default")
    assert created.spec.frontend == "bogus"


def test_the_lab_longhorn_crds_are_structural_enough_for_the_server(api):
    documents = load_manifest(str(LONGHORN_CRDS))
    crds = api.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    api.store.create("namespaces", {"metadata": {"name": "longhorn-system"}})
    for document in documents:
        crds.create(document)
    api.dyn.resources.invalidate_cache()
    volumes = api.resource("longhorn.io/v1beta2", "Volume")
    volume = volumes.create({"metadata": {"name": "pvc-1"}, "spec": {"size": "1073741824", "numberOfReplicas": 1, "frontend": "blockdev"}},
                            namespace="longhorn-system")
    assert volume.spec.size == "1073741824"
    with pytest.raises(UnprocessibleEntityError) as caught:
        volumes.create({"metadata": {"name": "pvc-2"}, "spec": {"size": "1073741824", "frontend": "bogus"}}, namespace="longhorn-system")
    assert 'spec.frontend: Unsupported value: "bogus": supported values: ' in json.loads(caught.value.body)["message"]
