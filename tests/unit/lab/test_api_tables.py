# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tables for ``kubectl get``, and the machine's kubectl against the lab API server (over TLS)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

import pytest
import yaml

from tests.lab.control_plane import build
from tests.lab.kube import tables
from tests.lab.kube.resources import Registry
from tests.lab.longhorn import load_manifest

from .test_api_support import WIDGET_CRD, api, configmap, make_env, widget  # noqa: F401 pylint: disable=unused-import

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
LONGHORN_CRDS = pathlib.Path(__file__).resolve().parents[2] / "lab" / "longhorn" / "crds.yaml"


def test_jsonpath_subset():
    obj = {"status": {"conditions": [{"type": "Scheduled", "status": "False"}, {"type": "Ready", "status": "True"}], "state": "attached"},
           "spec": {"list": [1, 2, 3], "dotted": {"a.b": "x"}, "flag": False}}
    assert tables.jsonpath(obj, ".status.state") == ["attached"]
    assert tables.jsonpath(obj, ".status.conditions[?(@.type=='Ready')].status") == ["True"]
    assert tables.jsonpath(obj, '.status.conditions[?(@.type=="Scheduled")].status') == ["False"]
    assert tables.jsonpath(obj, ".status.conditions[?(@.type!='Ready')].type") == ["Scheduled"]
    assert tables.jsonpath(obj, ".spec.list[1]") == [2]
    assert tables.jsonpath(obj, ".spec.list[-1]") == [3]
    assert tables.jsonpath(obj, ".spec.list[*]") == [1, 2, 3]
    assert tables.jsonpath(obj, ".spec.dotted['a.b']") == ["x"]
    assert tables.jsonpath(obj, "{.spec.flag}") == [False]
    assert tables.jsonpath(obj, ".spec.missing") == []


@pytest.mark.parametrize("seconds, text", [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
                                           (10 * 3600, "10h"), (50 * 3600, "2d2h"), (30 * 86400, "30d"), (3 * 365 * 86400, "3y")])
def test_human_duration_matches_kubernetes(seconds, text):
    assert tables.human_duration(seconds) == text


def test_wants_table_reads_the_first_accepted_type():
    assert tables.wants_table(TABLE_ACCEPT)
    assert not tables.wants_table("application/json")
    assert not tables.wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io")
    assert not tables.wants_table(None)


def test_custom_resource_table_uses_printer_columns():
    rtype = Registry()
    rtype.register_crd(WIDGET_CRD)
    widgets = rtype.by_plural("widgets")
    obj = dict(widget("w"), status={"state": "attached", "conditions": [{"type": "Ready", "status": "True"}]})
    obj["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    table = tables.build_table(widgets, [obj], crd=WIDGET_CRD, resource_version="7")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "State", "Size", "Ready", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:4] == ["w", "attached", "1073741824", "True"] and re.match(r"^\d+y(\d+d)?$", cells[4])
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["rows"][0]["object"]["metadata"]["namespace"] == "default"
    assert table["metadata"]["resourceVersion"] == "7"
    bare = tables.build_table(widgets, [widget("x")], crd=None, include_object="None")
    assert [c["name"] for c in bare["columnDefinitions"]] == ["Name", "Age"] and bare["rows"][0]["object"] is None


def test_table_over_http_for_pods_and_custom_resources(api):
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    api.resource("v1", "Pod").create(pod, namespace="default")
    api.resource("lab.example.com/v1beta2", "Widget").create(widget("w"), namespace="default")
    status, headers, table = api.raw("GET", "/api/v1/pods", headers={"Accept": TABLE_ACCEPT})
    assert status == 200 and headers["Content-Type"] == "application/json" and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:4] == ["p", "0/1", "Pending", 0]
    status, _headers, table = api.raw("GET", "/apis/lab.example.com/v1beta2/namespaces/default/widgets/w", headers={"Accept": TABLE_ACCEPT})
    assert status == 200 and table["rows"][0]["cells"][0] == "w" and table["rows"][0]["cells"][1] is None
    status, _headers, plain = api.raw("GET", "/api/v1/pods", headers={"Accept": "application/json"})
    assert plain["kind"] == "PodList"


# ---- kubectl (the project's own build, v1.36.3: make lab-components) --------------------------------------
@pytest.fixture
def kubectl(tmp_path):
    binary = build.binary("kubectl")
    env = make_env(tmp_path / "lab", tls=True)
    env.store.create("namespaces", {"metadata": {"name": "longhorn-system"}})
    for document in load_manifest(str(LONGHORN_CRDS)):
        env.store.create("customresourcedefinitions", document)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    environ.update(KUBECONFIG=env.kubeconfig, HOME=str(tmp_path))

    def run(*args, check=True, stdin=None):
        result = subprocess.run([binary, *args], env=environ, capture_output=True, text=True, timeout=120, input=stdin, check=False)
        if check:
            assert result.returncode == 0, "kubectl %s -> %d\n%s\n%s" % (" ".join(args), result.returncode, result.stdout, result.stderr)
        return result

    run.env = env
    try:
        yield run
    finally:
        env.client.close()
        env.server.stop()


def test_kubectl_get_tables(kubectl):
    store = kubectl.env.store
    store.create("volumes", {"metadata": {"name": "pvc-0a1b", "namespace": "longhorn-system"},
                             "spec": {"size": "2147483648", "numberOfReplicas": 1, "frontend": "blockdev"}})
    store.modify("volumes", "longhorn-system", "pvc-0a1b", lambda o: o.update(status={"state": "detached", "robustness": "unknown"}),
                 subresource="status")
    store.create("pods", {"metadata": {"name": "web-0", "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})

    lines = kubectl("get", "volumes.longhorn.io", "-A").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"] and "STATE" in lines[0] and "SIZE" in lines[0]
    assert lines[1].split()[:2] == ["longhorn-system", "pvc-0a1b"]
    assert "detached" in lines[1] and "2147483648" in lines[1]

    lines = kubectl("get", "pods", "-A").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:5] == ["default", "web-0", "0/1", "Pending", "0"]

    crds = kubectl("get", "crd").stdout
    assert "volumes.longhorn.io" in crds and "CREATED AT" in crds
    assert kubectl("get", "lhv", "-n", "longhorn-system", "-o", "jsonpath={.items[0].spec.size}").stdout == "2147483648"
    version = kubectl("version", "-o", "yaml").stdout
    assert "v1.33.5+k3s1" in version


def test_kubectl_apply_is_idempotent_and_server_side_apply_works(kubectl, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(yaml.safe_dump(configmap("demo")), encoding="utf-8")
    assert "configmap/demo created" in kubectl("apply", "-f", str(manifest)).stdout
    assert "configmap/demo unchanged" in kubectl("apply", "-f", str(manifest)).stdout
    volume = tmp_path / "volume.yaml"
    volume.write_text(yaml.safe_dump({"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                                      "metadata": {"name": "v1", "namespace": "longhorn-system"},
                                      "spec": {"size": "1073741824", "numberOfReplicas": 2}}), encoding="utf-8")
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(volume)).stdout
    stored = kubectl.env.store.get("volumes", "longhorn-system", "v1")
    assert stored["metadata"]["managedFields"][0]["manager"] == "kubectl" and stored["spec"]["numberOfReplicas"] == 2
    kubectl("patch", "lhv", "v1", "-n", "longhorn-system", "--type=merge", "-p", '{"spec":{"numberOfReplicas":3}}')
    assert kubectl.env.store.get("volumes", "longhorn-system", "v1")["spec"]["numberOfReplicas"] == 3
    refused = kubectl("patch", "lhv", "v1", "-n", "longhorn-system", "--type=merge", "-p", '{"spec":{"frontend":"bogus"}}', check=False)
    assert refused.returncode != 0 and 'spec.frontend: Unsupported value: "bogus"' in refused.stderr
    kubectl("delete", "-f", str(volume))
    assert kubectl.env.store.try_get("volumes", "longhorn-system", "v1") is None
