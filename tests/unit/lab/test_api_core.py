# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab API server through the kubernetes client: auth, discovery, CRUD, selectors, dry run, subresources."""

from __future__ import annotations

import copy
import json
import time

import pytest
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, UnprocessibleEntityError

from .test_api_support import WIDGET_CRD, api, configmap, deployment, widget  # noqa: F401 pylint: disable=unused-import


# ---- auth, health, discovery ----------------------------------------------------
def test_requests_without_a_valid_token_get_401(api):
    status, _headers, body = api.raw("GET", "/api/v1/namespaces", token=False)
    assert status == 401
    assert body["kind"] == "Status" and body["reason"] == "Unauthorized" and body["code"] == 401
    status, _headers, body = api.raw("GET", "/api/v1/namespaces", token="wrong-token")
    assert status == 401
    status, _headers, body = api.raw("GET", "/api/v1/namespaces")
    assert status == 200 and body["kind"] == "NamespaceList"


def test_health_and_version_need_the_token_like_k3s(api):
    # k3s runs kube-apiserver with --anonymous-auth=false.
    assert api.raw("GET", "/healthz", token=False)[0] == 401
    assert api.raw("GET", "/version", token=False)[0] == 401
    status, _headers, body = api.raw("GET", "/healthz")
    assert (status, body) == (200, "ok")
    status, _headers, body = api.raw("GET", "/version")
    assert status == 200
    assert body["gitVersion"].startswith("v1.33.") and body["gitVersion"].endswith("+k3s1")
    assert api.dyn.version["kubernetes"]["minor"] == "33"


def test_discovery_lists_groups_resources_and_subresources(api):
    status, _headers, groups = api.raw("GET", "/apis")
    assert status == 200 and groups["kind"] == "APIGroupList"
    names = {g["name"]: g for g in groups["groups"]}
    for group in ("apps", "batch", "storage.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io", "lab.example.com"):
        assert group in names
    assert names["lab.example.com"]["preferredVersion"]["groupVersion"] == "lab.example.com/v1beta2"
    _status, _headers, core = api.raw("GET", "/api/v1")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["namespaced"] is True and "po" in by_name["pods"]["shortNames"]
    assert by_name["pods"]["categories"] == ["all"]
    assert by_name["pods/exec"]["kind"] == "PodExecOptions" and set(by_name["pods/exec"]["verbs"]) == {"create", "get"}
    assert by_name["persistentvolumes"]["namespaced"] is False
    _status, _headers, apps = api.raw("GET", "/apis/apps/v1")
    scale = {r["name"]: r for r in apps["resources"]}["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    _status, _headers, custom = api.raw("GET", "/apis/lab.example.com/v1beta2")
    entries = {r["name"]: r for r in custom["resources"]}
    assert entries["widgets"]["shortNames"] == ["wd"] and entries["widgets"]["singularName"] == "widget"
    assert entries["widgets/status"]["verbs"] == ["get", "patch", "update"]
    status, _headers, _body = api.raw("GET", "/apis/nope.example.com")
    assert status == 404


def test_crd_created_through_the_api_appears_in_discovery(api):
    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = "gadgets.lab.example.com"
    crd["spec"]["group"] = "lab.example.com"
    crd["spec"]["names"] = {"kind": "Gadget", "plural": "gadgets"}
    created = api.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").create(crd)
    assert {c["type"]: c["status"] for c in created.status.conditions}["Established"] == "True"
    assert created.spec.names.singular == "gadget" and created.spec.names.listKind == "GadgetList"
    _status, _headers, custom = api.raw("GET", "/apis/lab.example.com/v1beta2")
    assert "gadgets" in {r["name"] for r in custom["resources"]}
    api.dyn.resources.invalidate_cache()
    gadgets = api.resource("lab.example.com/v1beta2", "Gadget")
    gadgets.create({"metadata": {"name": "g1", "namespace": "default"}, "spec": {"size": "1"}})
    assert [g.metadata.name for g in gadgets.get(namespace="default").items] == ["g1"]


def test_unknown_resources_are_404(api):
    status, _headers, body = api.raw("GET", "/api/v1/bogus")
    assert status == 404 and body["reason"] == "NotFound"
    status, _headers, _body = api.raw("GET", "/api/v1/namespaces/default/persistentvolumes")
    assert status == 404


# ---- CRUD ---------------------------------------------------------------------------------
def test_create_get_replace_and_delete_a_configmap(api):
    configmaps = api.resource("v1", "ConfigMap")
    created = configmaps.create(configmap("settings"), namespace="default")
    assert created.metadata.uid and created.metadata.resourceVersion and created.metadata.creationTimestamp
    fetched = configmaps.get(name="settings", namespace="default")
    assert fetched.data.key == "value"
    body = fetched.to_dict()
    body["data"] = {"key": "changed"}
    replaced = configmaps.replace(body)
    assert replaced.data.key == "changed"
    assert int(replaced.metadata.resourceVersion) > int(created.metadata.resourceVersion)
    status = configmaps.delete(name="settings", namespace="default")
    assert status.kind == "Status" and status.status == "Success" and status.details.name == "settings"
    with pytest.raises(NotFoundError):
        configmaps.get(name="settings", namespace="default")


def test_create_twice_is_409_already_exists(api):
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.create(configmap("once"), namespace="default")
    with pytest.raises(ConflictError) as caught:
        configmaps.create(configmap("once"), namespace="default")
    assert caught.value.status == 409 and '"once" already exists' in caught.value.summary()


def test_replace_with_a_stale_resource_version_is_409(api):
    configmaps = api.resource("v1", "ConfigMap")
    first = configmaps.create(configmap("cm"), namespace="default").to_dict()
    second = copy.deepcopy(first)
    first["data"] = {"key": "first"}
    configmaps.replace(first)
    second["data"] = {"key": "second"}
    with pytest.raises(ConflictError) as caught:
        configmaps.replace(second)
    assert "the object has been modified" in caught.value.summary()
    assert configmaps.get(name="cm", namespace="default").data.key == "first"


def test_create_in_a_missing_namespace_is_404(api):
    with pytest.raises(NotFoundError) as caught:
        api.resource("v1", "ConfigMap").create(configmap("x", namespace="nowhere"), namespace="nowhere")
    assert 'namespaces "nowhere" not found' in caught.value.summary()


def test_generate_name_creates_a_unique_name(api):
    created = api.core.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}, "data": {}})
    assert created.metadata.name.startswith("job-") and len(created.metadata.name) == len("job-") + 5


def test_wrong_kind_or_api_version_in_the_body_is_400(api):
    status, _headers, body = api.raw("POST", "/api/v1/namespaces/default/configmaps",
                                     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert status == 400 and "does not match the expected kind" in body["message"]
    status, _headers, body = api.raw("POST", "/apis/apps/v1/namespaces/default/deployments",
                                     dict(deployment("d"), apiVersion="apps/v1beta1"))
    assert status == 400 and "the API version in the data (apps/v1beta1)" in body["message"]


# ---- list, selectors, pagination -------------------------------------------------------------------
def test_label_and_field_selectors(api):
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.create(configmap("a", labels={"app": "db", "tier": "backend"}), namespace="default")
    configmaps.create(configmap("b", labels={"app": "web"}), namespace="default")
    configmaps.create(configmap("c"), namespace="default")

    def names(**kwargs):
        return sorted(i.metadata.name for i in configmaps.get(namespace="default", **kwargs).items)

    assert names(label_selector="app=db") == ["a"]
    assert names(label_selector="app in (db,web)") == ["a", "b"]
    assert names(label_selector="!app") == ["c"]
    assert names(label_selector="app,tier!=frontend") == ["a", "b"]
    assert names(label_selector="app,tier") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    with pytest.raises(ApiException) as caught:
        api.core.list_namespaced_config_map("default", field_selector="data.key=value")
    assert caught.value.status == 400 and "field label not supported: data.key" in caught.value.body


def test_pod_field_selector_on_status_phase(api):
    pods = api.resource("v1", "Pod")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    pods.create(pod, namespace="default")
    assert [p.metadata.name for p in pods.get(namespace="default", field_selector="status.phase=Pending").items] == ["p"]
    assert pods.get(namespace="default", field_selector="status.phase=Running").items == []


def test_list_across_namespaces_and_pagination(api):
    api.store.create("namespaces", {"metadata": {"name": "other"}})
    for namespace in ("default", "other"):
        for index in range(3):
            api.store.create("configmaps", configmap("cm-%d" % index, namespace=namespace))
    every = api.core.list_config_map_for_all_namespaces()
    assert sorted((c.metadata.namespace, c.metadata.name) for c in every.items) == [
        (ns, "cm-%d" % i) for ns in ("default", "other") for i in range(3)]
    page = api.core.list_config_map_for_all_namespaces(limit=4)
    assert len(page.items) == 4 and page.metadata._continue and page.metadata.remaining_item_count == 2
    rest = api.core.list_config_map_for_all_namespaces(limit=4, _continue=page.metadata._continue)
    assert rest.metadata._continue is None
    seen = [(c.metadata.namespace, c.metadata.name) for c in page.items + rest.items]
    assert seen == sorted(seen) and len(set(seen)) == 6


def test_list_items_carry_type_meta_only_for_custom_resources(api):
    api.store.create("configmaps", configmap("cm"))
    api.store.create("widgets", widget("w"))
    _status, _headers, configmaps = api.raw("GET", "/api/v1/namespaces/default/configmaps")
    assert configmaps["kind"] == "ConfigMapList" and configmaps["apiVersion"] == "v1"
    assert "kind" not in configmaps["items"][0] and "apiVersion" not in configmaps["items"][0]
    _status, _headers, widgets = api.raw("GET", "/apis/lab.example.com/v1beta2/namespaces/default/widgets")
    assert (widgets["items"][0]["apiVersion"], widgets["items"][0]["kind"]) == ("lab.example.com/v1beta2", "Widget")
    # The dynamic client fills them in, as kubernetes.core sees them.
    item = api.resource("v1", "ConfigMap").get(namespace="default").items[0]
    assert (item.kind, item.apiVersion) == ("ConfigMap", "v1")


def test_delete_collection_with_a_label_selector(api):
    configmaps = api.resource("v1", "ConfigMap")
    for name, labels in (("a", {"purge": "yes"}), ("b", {"purge": "yes"}), ("c", {})):
        configmaps.create(configmap(name, labels=labels), namespace="default")
    result = configmaps.delete(namespace="default", label_selector="purge=yes")
    assert result.kind == "ConfigMapList" and sorted(i.metadata.name for i in result.items) == ["a", "b"]
    assert [c.metadata.name for c in configmaps.get(namespace="default").items] == ["c"]


# ---- dry run --------------------------------------------------------------------------------------
def test_dry_run_writes_nothing_but_validates(api):
    configmaps = api.resource("v1", "ConfigMap")
    mark = len(api.audit())
    answer = configmaps.create(configmap("dry"), namespace="default", dry_run="All")
    assert answer.metadata.name == "dry" and answer.metadata.uid
    assert api.store.try_get("configmaps", "default", "dry") is None
    configmaps.create(configmap("real"), namespace="default")
    rv = api.store.get("configmaps", "default", "real")["metadata"]["resourceVersion"]
    configmaps.patch(body={"data": {"key": "dry"}}, name="real", namespace="default", content_type="application/merge-patch+json",
                     dry_run="All")
    configmaps.delete(name="real", namespace="default", dry_run="All")
    stored = api.store.get("configmaps", "default", "real")
    assert stored["data"] == {"key": "value"} and stored["metadata"]["resourceVersion"] == rv
    with pytest.raises(UnprocessibleEntityError):
        api.resource("v1", "PersistentVolumeClaim").create({"metadata": {"name": "bad"}, "spec": {}}, namespace="default", dry_run="All")
    entries = api.audit()[mark:]
    dry = [e for e in entries if e["dryRun"]]
    assert [e["verb"] for e in dry] == ["create", "patch", "delete", "create"]
    assert all(e["write"] for e in dry)
    assert [e["verb"] for e in entries if e["write"] and not e["dryRun"]] == ["create"]


def test_dry_run_rejects_unknown_values(api):
    status, _headers, body = api.raw("POST", "/api/v1/namespaces/default/configmaps?dryRun=Some", configmap("x"))
    assert status == 422 and 'Unsupported value: "Some"' in body["message"]


# ---- status subresource, generation, finalizers -----------------------------------------------------------
def test_status_subresource_semantics(api):
    widgets = api.resource("lab.example.com/v1beta2", "Widget")
    created = widgets.create(dict(widget("w1"), status={"state": "ignored-on-create"}), namespace="default")
    assert "status" not in created.to_dict() and created.metadata.generation == 1
    body = created.to_dict()
    body["status"] = {"state": "attached"}
    body["spec"]["frontend"] = "iscsi"
    after_main = widgets.replace(body)
    assert "status" not in after_main.to_dict() and after_main.spec.frontend == "iscsi"
    assert after_main.metadata.generation == 2
    body = after_main.to_dict()
    body["status"] = {"state": "attached"}
    body["spec"]["frontend"] = "blockdev"
    after_status = widgets.status.replace(body)
    assert after_status.status.state == "attached" and after_status.spec.frontend == "iscsi"
    assert after_status.metadata.generation == 2
    patched = widgets.status.patch(body={"status": {"state": "detached"}}, name="w1", namespace="default",
                                   content_type="application/merge-patch+json")
    assert patched.status.state == "detached"
    assert widgets.status.get(name="w1", namespace="default").status.state == "detached"


def test_finalizers_hold_deletion_until_removed(api):
    configmaps = api.resource("v1", "ConfigMap")
    body = configmap("held")
    body["metadata"]["finalizers"] = ["lab.example.com/keep"]
    configmaps.create(body, namespace="default")
    answer = configmaps.delete(name="held", namespace="default")
    assert answer.metadata.deletionTimestamp and answer.kind == "ConfigMap"
    still = configmaps.get(name="held", namespace="default")
    assert still.metadata.deletionTimestamp
    with pytest.raises(ApiException) as caught:
        api.core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": ["lab.example.com/keep", "new.example.com/x"]}})
    assert caught.value.status == 403
    configmaps.patch(body={"metadata": {"finalizers": None}}, name="held", namespace="default", content_type="application/merge-patch+json")
    with pytest.raises(NotFoundError):
        configmaps.get(name="held", namespace="default")


def test_delete_preconditions(api):
    configmaps = api.resource("v1", "ConfigMap")
    created = configmaps.create(configmap("pre"), namespace="default")
    with pytest.raises(ConflictError) as caught:
        configmaps.delete(name="pre", namespace="default", body={"preconditions": {"uid": "not-the-uid"}})
    assert "Precondition failed: UID in precondition" in caught.value.summary()
    configmaps.delete(name="pre", namespace="default", body={"preconditions": {"uid": created.metadata.uid}})
    assert api.store.try_get("configmaps", "default", "pre") is None


def test_namespace_deletion_terminates_then_removes_contents(api):
    namespaces = api.resource("v1", "Namespace")
    created = namespaces.create({"metadata": {"name": "doomed"}})
    assert created.status.phase == "Active"
    assert created.metadata.labels["kubernetes.io/metadata.name"] == "doomed"
    held = configmap("held", namespace="doomed")
    held["metadata"]["finalizers"] = ["lab.example.com/keep"]
    api.store.create("configmaps", held)
    api.store.create("configmaps", configmap("plain", namespace="doomed"))
    answer = namespaces.delete(name="doomed")
    assert answer.status.phase == "Terminating" and answer.metadata.deletionTimestamp
    assert api.store.try_get("configmaps", "doomed", "plain") is None
    with pytest.raises(ApiException) as caught:
        api.core.create_namespaced_config_map("doomed", configmap("late", namespace="doomed"))
    assert caught.value.status == 403 and "is being terminated" in caught.value.body
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.patch(body={"metadata": {"finalizers": []}}, name="held", namespace="doomed", content_type="application/merge-patch+json")
    with pytest.raises(NotFoundError):
        namespaces.get(name="doomed")


def test_owner_references_are_garbage_collected(api):
    configmaps = api.resource("v1", "ConfigMap")
    owner = configmaps.create(configmap("owner"), namespace="default")
    dependent = configmap("dependent")
    dependent["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]
    configmaps.create(dependent, namespace="default")
    configmaps.delete(name="owner", namespace="default")
    assert api.store.try_get("configmaps", "default", "dependent") is None


# ---- scale, log, exec routing -----------------------------------------------------------------------------
def test_scale_subresource_maps_to_spec_replicas(api):
    deployments = api.resource("apps/v1", "Deployment")
    deployments.create(deployment("web", replicas=2), namespace="default")
    scale = deployments.scale.get(name="web", namespace="default")
    assert (scale.kind, scale.apiVersion) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    deployments.scale.patch(body={"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 5}},
                            name="web", namespace="default")
    assert api.store.get("deployments", "default", "web")["spec"]["replicas"] == 5
    scale = deployments.scale.get(name="web", namespace="default").to_dict()
    scale["spec"]["replicas"] = 3
    replaced = deployments.scale.replace(scale)
    assert replaced.spec.replicas == 3 and api.store.get("deployments", "default", "web")["spec"]["replicas"] == 3
    scale["spec"]["replicas"] = 4
    with pytest.raises(ConflictError):
        deployments.scale.replace(scale)
    with pytest.raises(UnprocessibleEntityError) as caught:
        deployments.scale.patch(body={"spec": {"replicas": -1}}, name="web", namespace="default",
                                content_type="application/merge-patch+json")
    assert "must be greater than or equal to 0" in caught.value.summary()


def test_pod_log_and_exec_routes(api):
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    api.resource("v1", "Pod").create(pod, namespace="default")
    assert api.core.read_namespaced_pod_log("p", "default") == ""
    status, _headers, body = api.raw("POST", "/api/v1/namespaces/default/pods/missing/exec?command=true&stdout=true")
    assert status == 404 and body["reason"] == "NotFound"
    status, _headers, body = api.raw("POST", "/api/v1/namespaces/default/pods/p/exec?command=true&stdout=true")
    assert status == 400 and "Upgrade request required" in body["message"]


def test_errors_are_status_objects_and_unexpected_ones_are_500(api, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api.store, "list", broken)
    status, _headers, body = api.raw("GET", "/api/v1/namespaces/default/configmaps")
    assert status == 500 and body["kind"] == "Status" and body["reason"] == "InternalError" and "boom" in body["message"]


def test_stop_returns_quickly_and_closes_the_port(tmp_path):
    from .test_api_support import make_env  # pylint: disable=import-outside-toplevel
    env = make_env(tmp_path)
    url = env.server.url
    watcher = env.client.call_api("/api/v1/namespaces/default/configmaps", "GET", query_params=[("watch", "true")],
                                  auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
    started = time.monotonic()
    env.server.stop()
    assert time.monotonic() - started < 5
    watcher.release_conn()
    import socket  # pylint: disable=import-outside-toplevel
    host, port = url.rsplit("//", 1)[1].split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()


def test_custom_resources_refuse_updates_without_a_resource_version(api):
    widgets = api.resource("lab.example.com/v1beta2", "Widget")
    widgets.create(widget("w"), namespace="default")
    with pytest.raises(UnprocessibleEntityError) as caught:
        widgets.replace(widget("w", frontend="iscsi"))
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["message"] == (
        'widgets.lab.example.com "w" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update')
    # Built-in kinds allow unconditional updates.
    api.resource("v1", "ConfigMap").create(configmap("cm"), namespace="default")
    assert api.resource("v1", "ConfigMap").replace(configmap("cm", data={"k": "2"})).data.k == "2"


def test_request_bodies_are_limited_to_3_mib(api):
    big = configmap("big", data={"blob": "x" * (3 * 1024 * 1024)})
    status, _headers, body = api.raw("POST", "/api/v1/namespaces/default/configmaps", big)
    assert status == 413 and body["reason"] == "RequestEntityTooLarge" and "limit is 3145728" in body["message"]
