# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kubectl v1.36.3 (the lab's build) as a peer client of the lab's real control plane.

kubectl is the reference client: what it does against a Kubernetes API server is what
the API server must answer.  These tests need no node (no pod runs); the ones that need the
node agent (exec, logs, cp) are in test_kubectl_exec_peer.py.  Every test asserts exit
codes and output, so a control plane that answers wrongly fails it.
"""

from __future__ import annotations

import json

import pytest

from tests.peer.kubectl_harness import KUBERNETES_VERSION, Kubectl, start_control_plane

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory):
    cp = start_control_plane(tmp_path_factory.mktemp("kubectl-peer-cp"))
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def kubectl(control_plane, tmp_path_factory):
    return Kubectl(control_plane, tmp_path_factory.mktemp("kubectl-home"))


@pytest.fixture
def namespace(kubectl, request):
    name = "peer-" + request.node.name.replace("_", "-").lower()[:40].strip("-")
    kubectl.ok("create", "namespace", name)
    return name


def configmap(name, namespace, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


# ---- get ---------------------------------------------------------------------------------
def test_version_is_the_pinned_release_on_both_sides(kubectl):
    versions = kubectl.ok("version", "-o", "json").json()
    assert versions["clientVersion"]["gitVersion"] == KUBERNETES_VERSION
    assert versions["serverVersion"]["gitVersion"] == KUBERNETES_VERSION


def test_get_namespaces_lists_the_system_namespaces(kubectl):
    run = kubectl.ok("get", "namespaces")
    names = [line.split()[0] for line in run.stdout.splitlines()[1:]]
    assert run.stdout.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    for expected in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert expected in names, run


def test_get_json_is_a_list_of_active_namespaces(kubectl):
    body = kubectl.ok("get", "namespaces", "-o", "json").json()
    assert body["kind"] == "List" and body["apiVersion"] == "v1"
    phases = {item["metadata"]["name"]: item["status"]["phase"] for item in body["items"]}
    assert phases["kube-system"] == "Active"
    assert all(item["kind"] == "Namespace" for item in body["items"])


def test_get_wide_uses_server_side_table_columns(kubectl, namespace):
    kubectl.ok("create", "deployment", "wide", "--image=registry.invalid/peer:1", "-n", namespace)
    run = kubectl.ok("get", "deployment", "wide", "-n", namespace, "-o", "wide")
    header = run.stdout.splitlines()[0].split()
    # The columns come from the API server's Table response (apps/v1 Deployment printer).
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"], run
    row = run.stdout.splitlines()[1].split()
    assert row[0] == "wide" and "registry.invalid/peer:1" in row and "app=wide" in row, run


def test_get_missing_object_is_not_found(kubectl):
    run = kubectl("get", "configmap", "no-such-configmap", "-n", "default")
    assert run.returncode == 1, run
    assert 'configmaps "no-such-configmap" not found' in run.stderr, run


def test_api_resources_and_raw_health(kubectl):
    resources = kubectl.ok("api-resources", "-o", "name").stdout.split()
    for expected in ("configmaps", "deployments.apps", "leases.coordination.k8s.io", "customresourcedefinitions.apiextensions.k8s.io"):
        assert expected in resources
    assert kubectl.ok("get", "--raw", "/readyz").stdout.strip() == "ok"


# ---- apply (client side) ---------------------------------------------------------------
def test_client_side_apply_created_unchanged_configured(kubectl, namespace):
    first = configmap("applied", namespace, {"key": "one"})
    run = kubectl.ok("apply", "-f", "-", stdin=first)
    assert run.stdout.strip() == "configmap/applied created", run
    run = kubectl.ok("apply", "-f", "-", stdin=first)
    assert run.stdout.strip() == "configmap/applied unchanged", run
    run = kubectl.ok("apply", "-f", "-", stdin=configmap("applied", namespace, {"key": "two"}))
    assert run.stdout.strip() == "configmap/applied configured", run
    live = kubectl.ok("get", "configmap", "applied", "-n", namespace, "-o", "json").json()
    assert live["data"] == {"key": "two"}
    last_applied = json.loads(live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["data"] == {"key": "two"}


def test_client_side_apply_prunes_a_field_removed_from_the_manifest(kubectl, namespace):
    kubectl.ok("apply", "-f", "-", stdin=configmap("pruned", namespace, {"keep": "1", "drop": "2"}))
    kubectl.ok("apply", "-f", "-", stdin=configmap("pruned", namespace, {"keep": "1"}))
    live = kubectl.ok("get", "configmap", "pruned", "-n", namespace, "-o", "json").json()
    assert live["data"] == {"keep": "1"}


# ---- apply --server-side -----------------------------------------------------------------
def test_server_side_apply_records_the_field_manager(kubectl, namespace):
    run = kubectl.ok("apply", "--server-side", "--field-manager=alpha", "-f", "-", stdin=configmap("ssa", namespace, {"key": "a"}))
    assert run.stdout.strip() == "configmap/ssa serverside-applied", run
    live = kubectl.ok("get", "configmap", "ssa", "-n", namespace, "-o", "json", "--show-managed-fields").json()
    managers = {(entry["manager"], entry["operation"]) for entry in live["metadata"]["managedFields"]}
    assert ("alpha", "Apply") in managers, managers
    alpha = next(entry for entry in live["metadata"]["managedFields"] if entry["manager"] == "alpha")
    assert "f:key" in alpha["fieldsV1"]["f:data"]


def test_server_side_apply_conflict_needs_force_conflicts(kubectl, namespace):
    kubectl.ok("apply", "--server-side", "--field-manager=alpha", "-f", "-", stdin=configmap("contested", namespace, {"key": "a"}))
    run = kubectl("apply", "--server-side", "--field-manager=beta", "-f", "-", stdin=configmap("contested", namespace, {"key": "b"}))
    assert run.returncode == 1, run
    assert "conflict" in run.stderr.lower() and '"alpha"' in run.stderr and ".data.key" in run.stderr, run
    assert kubectl.ok("get", "configmap", "contested", "-n", namespace, "-o", "jsonpath={.data.key}").stdout == "a"
    run = kubectl.ok("apply", "--server-side", "--field-manager=beta", "--force-conflicts", "-f", "-",
                     stdin=configmap("contested", namespace, {"key": "b"}))
    live = kubectl.ok("get", "configmap", "contested", "-n", namespace, "-o", "json", "--show-managed-fields").json()
    assert live["data"] == {"key": "b"}
    owners = [entry["manager"] for entry in live["metadata"]["managedFields"] if "f:key" in json.dumps(entry.get("fieldsV1", {}))]
    assert owners == ["beta"], live["metadata"]["managedFields"]


def test_server_side_apply_same_manager_is_no_conflict(kubectl, namespace):
    kubectl.ok("apply", "--server-side", "--field-manager=alpha", "-f", "-", stdin=configmap("mine", namespace, {"key": "a"}))
    kubectl.ok("apply", "--server-side", "--field-manager=alpha", "-f", "-", stdin=configmap("mine", namespace, {"key": "b"}))
    assert kubectl.ok("get", "configmap", "mine", "-n", namespace, "-o", "jsonpath={.data.key}").stdout == "b"


# ---- diff --------------------------------------------------------------------------------
def test_diff_exit_codes(kubectl, namespace):
    manifest = configmap("diffed", namespace, {"key": "one"})
    run = kubectl("diff", "-f", "-", stdin=manifest)
    assert run.returncode == 1 and "+  key: one" in run.stdout, run  # not there yet: all of it is new
    kubectl.ok("apply", "-f", "-", stdin=manifest)
    run = kubectl("diff", "-f", "-", stdin=manifest)
    assert run.returncode == 0 and run.stdout == "", run
    run = kubectl("diff", "-f", "-", stdin=configmap("diffed", namespace, {"key": "two"}))
    assert run.returncode == 1, run
    assert "-  key: one" in run.stdout and "+  key: two" in run.stdout, run
    # diff is a server-side dry run: nothing changed.
    assert kubectl.ok("get", "configmap", "diffed", "-n", namespace, "-o", "jsonpath={.data.key}").stdout == "one"


def test_diff_error_is_above_one(kubectl, namespace):
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Valid_Name", "namespace": namespace}, "data": {"k": "v"}}
    run = kubectl("diff", "-f", "-", stdin=bad)
    assert run.returncode > 1, run
    assert "Invalid value" in run.stderr, run


# ---- wait on what the controllers do -------------------------------------------------------
def test_wait_for_namespace_phase_and_its_controllers(kubectl):
    kubectl.ok("create", "namespace", "peer-waited")
    kubectl.ok("wait", "--for=jsonpath={.status.phase}=Active", "namespace/peer-waited", "--timeout=30s")
    # The service-account controller creates "default"; the root-CA publisher creates kube-root-ca.crt.
    kubectl.ok("wait", "--for=create", "serviceaccount/default", "-n", "peer-waited", "--timeout=30s")
    kubectl.ok("wait", "--for=create", "configmap/kube-root-ca.crt", "-n", "peer-waited", "--timeout=30s")
    ca = kubectl.ok("get", "configmap", "kube-root-ca.crt", "-n", "peer-waited", "-o", "jsonpath={.data.ca\\.crt}").stdout
    assert ca.startswith("-----BEGIN CERTIFICATE-----"), ca[:80]


def test_wait_for_a_service_account_token_secret(kubectl, namespace):
    kubectl.ok("create", "serviceaccount", "robot", "-n", namespace)
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "robot-token", "namespace": namespace, "annotations": {"kubernetes.io/service-account.name": "robot"}}}
    kubectl.ok("apply", "-f", "-", stdin=secret)
    # The token controller (kube-controller-manager) fills in token, ca.crt and namespace.
    kubectl.ok("wait", "--for=jsonpath={.data.token}", "secret/robot-token", "-n", namespace, "--timeout=30s")
    data = kubectl.ok("get", "secret", "robot-token", "-n", namespace, "-o", "json").json()["data"]
    assert set(data) == {"token", "ca.crt", "namespace"}, data


def test_wait_for_deployment_controllers_scheduler_and_node(kubectl, namespace):
    kubectl.ok("create", "deployment", "web", "--image=registry.invalid/peer:1", "--replicas=1", "-n", namespace)
    # deployment controller -> ReplicaSet; replicaset controller -> Pod; scheduler -> the lab node; node agent -> Ready.
    kubectl.ok("wait", "--for=jsonpath={.status.replicas}=1", "deployment/web", "-n", namespace, "--timeout=60s")
    replicasets = kubectl.ok("get", "replicasets", "-n", namespace, "-l", "app=web", "-o", "json").json()["items"]
    assert len(replicasets) == 1 and replicasets[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    kubectl.ok("wait", "--for=condition=Available", "deployment/web", "-n", namespace, "--timeout=60s")
    pods = kubectl.ok("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").json()["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["lab-node-1"]
    kubectl.ok("scale", "deployment/web", "--replicas=3", "-n", namespace)
    kubectl.ok("wait", "--for=jsonpath={.status.readyReplicas}=3", "deployment/web", "-n", namespace, "--timeout=60s")


def test_delete_cascades_through_the_garbage_collector(kubectl, namespace):
    kubectl.ok("create", "deployment", "doomed", "--image=registry.invalid/peer:1", "-n", namespace)
    kubectl.ok("wait", "--for=jsonpath={.status.replicas}=1", "deployment/doomed", "-n", namespace, "--timeout=60s")
    kubectl.ok("delete", "deployment", "doomed", "-n", namespace, "--cascade=background")
    kubectl.ok("wait", "--for=delete", "replicaset", "-l", "app=doomed", "-n", namespace, "--timeout=60s")
    kubectl.ok("wait", "--for=delete", "pod", "-l", "app=doomed", "-n", namespace, "--timeout=60s")
    assert kubectl.ok("get", "replicasets,pods", "-n", namespace, "-l", "app=doomed", "-o", "name").stdout == ""


def test_namespace_deletion_is_finalized_by_the_namespace_controller(kubectl):
    kubectl.ok("create", "namespace", "peer-deleted")
    kubectl.ok("create", "configmap", "inside", "--from-literal=a=b", "-n", "peer-deleted")
    kubectl.ok("delete", "namespace", "peer-deleted", "--wait=true", "--timeout=60s")
    run = kubectl("get", "namespace", "peer-deleted")
    assert run.returncode == 1 and "not found" in run.stderr, run


# ---- create (imperative) ----------------------------------------------------------------------
def test_create_configmap_imperatively(kubectl, namespace):
    run = kubectl.ok("create", "configmap", "made", "--from-literal=alpha=1", "--from-literal=beta=two words", "-n", namespace)
    assert run.stdout.strip() == "configmap/made created", run
    data = kubectl.ok("get", "configmap", "made", "-n", namespace, "-o", "json").json()["data"]
    assert data == {"alpha": "1", "beta": "two words"}
    run = kubectl("create", "configmap", "made", "--from-literal=alpha=1", "-n", namespace)
    assert run.returncode == 1 and 'configmaps "made" already exists' in run.stderr, run


def test_create_dry_run_server_does_not_persist(kubectl, namespace):
    run = kubectl.ok("create", "configmap", "dry", "--from-literal=a=b", "--dry-run=server", "-n", namespace, "-o", "json")
    assert run.json()["metadata"].get("uid"), run  # the server filled it in
    assert kubectl("get", "configmap", "dry", "-n", namespace).returncode == 1


# ---- explain ------------------------------------------------------------------------------------
def test_explain_builtin_field_from_openapi_v3(kubectl):
    run = kubectl.ok("explain", "deployment.spec.replicas")
    assert "GROUP:      apps" in run.stdout and "KIND:       Deployment" in run.stdout, run
    assert "FIELD: replicas <integer>" in run.stdout, run


def test_explain_custom_resource_schema(kubectl):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.peer.example.com"},
        "spec": {"group": "peer.example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "description": "What a widget wants.",
                                                               "properties": {"size": {"type": "integer", "description": "How big."}}}}}}}]},
    }
    kubectl.ok("apply", "-f", "-", stdin=crd)
    kubectl.ok("wait", "--for=condition=Established", "crd/widgets.peer.example.com", "--timeout=30s")
    run = kubectl.eventually(lambda r: r.returncode == 0, "explain", "widgets.spec.size", timeout=30)
    assert "FIELD: size <integer>" in run.stdout and "How big." in run.stdout, run


# ---- auth can-i ---------------------------------------------------------------------------------
def test_auth_can_i_restricted_user_then_after_a_rolebinding(kubectl, namespace):
    run = kubectl("auth", "can-i", "list", "pods", "-n", namespace, identity="restricted")
    assert run.returncode == 1 and run.stdout.strip() == "no", run
    run = kubectl("get", "pods", "-n", namespace, identity="restricted")
    assert run.returncode == 1 and "Forbidden" in run.stderr and "lab-restricted" in run.stderr, run
    run = kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as=lab-restricted")  # impersonated by the admin
    assert run.returncode == 1 and run.stdout.strip() == "no", run

    kubectl.ok("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", namespace)
    kubectl.ok("create", "rolebinding", "restricted-reads-pods", "--role=pod-reader", "--user=lab-restricted", "-n", namespace)
    run = kubectl.eventually(lambda r: r.returncode == 0, "auth", "can-i", "list", "pods", "-n", namespace, identity="restricted")
    assert run.stdout.strip() == "yes", run
    kubectl.ok("get", "pods", "-n", namespace, identity="restricted")
    # Only what was granted: not another verb, nor another namespace.
    run = kubectl("auth", "can-i", "delete", "pods", "-n", namespace, identity="restricted")
    assert run.returncode == 1 and run.stdout.strip() == "no", run
    run = kubectl("auth", "can-i", "list", "pods", "-n", "default", identity="restricted")
    assert run.returncode == 1 and run.stdout.strip() == "no", run


def test_auth_whoami(kubectl):
    body = kubectl.ok("auth", "whoami", "-o", "json", identity="restricted").json()
    assert body["status"]["userInfo"]["username"] == "lab-restricted"
    assert "lab:restricted" in body["status"]["userInfo"]["groups"]
