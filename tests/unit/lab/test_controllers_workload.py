# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deployments, ReplicaSets, StatefulSets and pods in the lab, judged by kubernetes.core's own readiness checks."""

from __future__ import annotations

import os
import re

import pytest
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import deployment_ready, statefulset_ready
from kubernetes.dynamic.resource import ResourceInstance

from tests.lab.controllers import csi
from tests.lab.controllers import workload
from tests.lab.longhorn import attachments

from .k8s_env import KubeEnv, pvc

NAME_SUFFIX = "[%s]{5}" % workload.SAFE_ALPHABET


@pytest.fixture
def env(tmp_path):
    running = KubeEnv(tmp_path / "state").start()
    yield running
    running.stop()


def _deployment(name="web", replicas=1, claim=None, image="nginx:1.27"):
    container = {"name": "web", "image": image}
    spec = {"containers": [container]}
    if claim:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/usr/share/nginx/html"}]
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def _statefulset(name="db", replicas=2, storage_class="longhorn", policy=None, management=None):
    spec = {
        "replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
            {"name": "db", "image": "postgres:16", "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "storage"}}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": storage_class, "resources": {"requests": {"storage": "1Gi"}}}}],
    }
    if policy:
        spec["persistentVolumeClaimRetentionPolicy"] = policy
    if management:
        spec["podManagementPolicy"] = management
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def _ready(env, plural, name, predicate):
    obj = env.get(plural, "default", name)
    return obj is not None and predicate(ResourceInstance(None, obj))


def _scale(env, plural, name, replicas):
    def _set(obj):
        obj["spec"]["replicas"] = replicas
    env.store.modify(plural, "default", name, _set)


def _pods(env, prefix):
    return sorted(p["metadata"]["name"] for p in env.store.list("pods", "default")[0] if p["metadata"]["name"].startswith(prefix))


def test_deployment_becomes_ready_through_a_replica_set(env):
    env.store.create("deployments", _deployment(replicas=2))
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="deployment_ready")
    sets = env.store.list("replicasets", "default")[0]
    assert len(sets) == 1
    rs = sets[0]
    template_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == "web-" + template_hash
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    names = _pods(env, "web-")
    assert len(names) == 2 and all(re.fullmatch("web-%s-%s" % (template_hash, NAME_SUFFIX), n) for n in names)
    pod = env.get("pods", "default", names[0])
    assert pod["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"]
    assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": template_hash}
    assert pod["spec"]["nodeName"] == "lab-node-1"
    deploy = env.get("deployments", "default", "web")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = deploy["status"]
    assert {k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    assert "unavailableReplicas" not in status
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"), "Progressing": ("True", "NewReplicaSetAvailable")}


def test_deployment_waits_for_its_claim_to_bind_and_attach(env):
    env.store.create("deployments", _deployment(claim="html"))
    env.settle()
    assert not _ready(env, "deployments", "web", deployment_ready)
    pod = env.get("pods", "default", _pods(env, "web-")[0])
    assert not pod["spec"].get("nodeName")
    assert {c["type"]: c for c in pod["status"]["conditions"]}["PodScheduled"]["reason"] == "Unschedulable"
    assert env.get("deployments", "default", "web")["status"]["unavailableReplicas"] == 1
    env.store.create("persistentvolumeclaims", pvc("html", storage_class="longhorn"))
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="deployment_ready")
    volume = env.get("persistentvolumeclaims", "default", "html")["spec"]["volumeName"]
    assert attachments.ticket_satisfied(env.store, volume, csi.attachment_id(volume, "lab-node-1"))


def test_scale_to_zero_and_back_detaches_and_reattaches(env):
    env.store.create("persistentvolumeclaims", pvc("html", storage_class="longhorn"))
    env.store.create("deployments", _deployment(claim="html"))
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="deployment_ready")
    volume = env.get("persistentvolumeclaims", "default", "html")["spec"]["volumeName"]

    _scale(env, "deployments", "web", 0)
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="ready at 0 replicas")
    env.wait_for(lambda: not attachments.tickets(env.store, volume), what="ticket removed")
    assert _pods(env, "web-") == []
    status = env.get("deployments", "default", "web")["status"]
    assert "replicas" not in status and "availableReplicas" not in status, "zero counts are omitted as the API does"

    _scale(env, "deployments", "web", 1)
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="ready again")
    assert list(attachments.tickets(env.store, volume)) == [csi.attachment_id(volume, "lab-node-1")]
    assert len(env.store.list("replicasets", "default")[0]) == 1


def test_template_change_rolls_out_a_new_replica_set(env):
    env.store.create("deployments", _deployment())
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="first rollout")
    first = env.store.list("replicasets", "default")[0][0]["metadata"]["name"]

    def _new_image(obj):
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    env.store.modify("deployments", "default", "web", _new_image)
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="second rollout")
    env.settle()
    sets = {rs["metadata"]["name"]: rs for rs in env.store.list("replicasets", "default")[0]}
    assert sets[first]["spec"]["replicas"] == 0
    second = next(name for name in sets if name != first)
    assert sets[second]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert env.get("deployments", "default", "web")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert all(p.startswith(second) for p in _pods(env, "web-"))


def test_deleting_a_deployment_collects_its_replica_sets_and_pods(env):
    env.store.create("deployments", _deployment(replicas=2))
    env.wait_for(lambda: _ready(env, "deployments", "web", deployment_ready), what="ready")
    env.store.delete("deployments", "default", "web")
    env.settle()
    assert env.store.list("replicasets", "default")[0] == []
    assert _pods(env, "web-") == []


def test_statefulset_claims_pods_and_readiness(env):
    env.store.create("statefulsets", _statefulset())
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="statefulset_ready")
    assert _pods(env, "db-") == ["db-0", "db-1"]
    for ordinal in (0, 1):
        claim = env.get("persistentvolumeclaims", "default", "data-db-%d" % ordinal)
        assert claim["status"]["phase"] == "Bound"
        assert claim["metadata"]["labels"] == {"tier": "storage", "app": "db"}
        assert "ownerReferences" not in claim["metadata"], "Retain policy: claims are not owned"
        pod = env.get("pods", "default", "db-%d" % ordinal)
        assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-%d" % ordinal}}]
        assert pod["spec"]["hostname"] == "db-%d" % ordinal and pod["spec"]["subdomain"] == "db"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == "db-%d" % ordinal
        assert labels["apps.kubernetes.io/pod-index"] == str(ordinal)
    status = env.get("statefulsets", "default", "db")["status"]
    assert status["currentRevision"] == status["updateRevision"] == env.get("pods", "default", "db-0")["metadata"]["labels"][
        "controller-revision-hash"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"], status["currentReplicas"]) == (2, 2, 2, 2)


def test_ordered_ready_statefulset_waits_for_each_pod(env):
    env.store.create("statefulsets", _statefulset(storage_class="missing-class"))
    env.wait_for(lambda: env.get("pods", "default", "db-0"), what="first pod")
    env.settle()
    assert _pods(env, "db-") == ["db-0"], "db-1 waits until db-0 is Running and Ready"
    status = env.get("statefulsets", "default", "db")["status"]
    assert status["replicas"] == 1 and status["availableReplicas"] == 0 and "readyReplicas" not in status


def test_parallel_statefulset_creates_all_pods_at_once(env):
    env.store.create("statefulsets", _statefulset(replicas=3, storage_class="missing-class", management="Parallel"))
    env.wait_for(lambda: _pods(env, "db-") == ["db-0", "db-1", "db-2"], what="all pods")


def test_statefulset_scale_to_zero_keeps_claims_and_comes_back_to_the_same_volumes(env):
    env.store.create("statefulsets", _statefulset())
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="ready")
    volumes = {o: env.get("persistentvolumeclaims", "default", "data-db-%d" % o)["spec"]["volumeName"] for o in (0, 1)}
    _scale(env, "statefulsets", "db", 0)
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="ready at 0")
    env.wait_for(lambda: all(not attachments.tickets(env.store, v) for v in volumes.values()), what="tickets removed")
    assert _pods(env, "db-") == []
    assert all(env.phase("persistentvolumeclaims", "default", "data-db-%d" % o) == "Bound" for o in (0, 1))
    _scale(env, "statefulsets", "db", 2)
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="ready again")
    assert {o: env.get("persistentvolumeclaims", "default", "data-db-%d" % o)["spec"]["volumeName"] for o in (0, 1)} == volumes


def test_statefulset_retention_policy_delete_removes_claims(env):
    env.store.create("statefulsets", _statefulset(policy={"whenDeleted": "Delete", "whenScaled": "Delete"}))
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="ready")
    claim = env.get("persistentvolumeclaims", "default", "data-db-1")
    assert claim["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    _scale(env, "statefulsets", "db", 1)
    env.wait_for(lambda: env.get("persistentvolumeclaims", "default", "data-db-1") is None, what="scaled-down claim deleted")
    env.store.delete("statefulsets", "default", "db")
    env.wait_for(lambda: env.get("persistentvolumeclaims", "default", "data-db-0") is None, what="claims deleted with the set")


def test_statefulset_template_change_replaces_pods_from_the_highest_ordinal(env):
    env.store.create("statefulsets", _statefulset(storage_class="longhorn"))
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="ready")
    old_revision = env.get("statefulsets", "default", "db")["status"]["updateRevision"]

    def _new_image(obj):
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:17"
    env.store.modify("statefulsets", "default", "db", _new_image)
    env.wait_for(lambda: env.get("statefulsets", "default", "db")["status"]["updateRevision"] != old_revision, what="new revision")
    env.wait_for(lambda: _ready(env, "statefulsets", "db", statefulset_ready), what="rolled out")
    revision = env.get("statefulsets", "default", "db")["status"]["currentRevision"]
    assert revision != old_revision
    assert all(env.get("pods", "default", p)["metadata"]["labels"]["controller-revision-hash"] == revision for p in ("db-0", "db-1"))


def test_bare_pod_with_config_map_waits_for_it(env):
    env.store.create("pods", {"metadata": {"name": "cfg", "namespace": "default"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}]}})
    env.wait_for(lambda: env.get("pods", "default", "cfg")["spec"].get("nodeName"), what="scheduled")
    env.settle()
    pod = env.get("pods", "default", "cfg")
    assert pod["status"]["phase"] == "Pending"
    assert 'configmap "settings" not found' in pod["status"]["message"]
    env.store.create("configmaps", {"metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "b"}})
    env.wait_for(lambda: env.phase("pods", "default", "cfg") == "Running", timeout=5, what="Running")
    pod = env.get("pods", "default", "cfg")
    assert pod["status"]["podIP"].startswith("10.42.0.")
    assert pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]


def test_deleted_pods_lose_their_node_files(env):
    env.store.create("pods", {"metadata": {"name": "scratch", "namespace": "default"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "volumes": [{"name": "tmp", "emptyDir": {}}]}})
    env.wait_for(lambda: env.phase("pods", "default", "scratch") == "Running", what="Running")
    uid = env.get("pods", "default", "scratch")["metadata"]["uid"]
    # What an exec leaves on the node: the pod's emptyDir.
    scratch = os.path.join(env.ctx.config.path("pods", uid), "volumes", "tmp")
    os.makedirs(scratch)
    orphan = env.ctx.config.path("pods", "uid-of-a-pod-wiped-with-the-cluster")
    os.makedirs(orphan)
    env.manager.resync()
    env.wait_for(lambda: not os.path.exists(orphan), what="orphaned pod dir removed")
    assert os.path.isdir(scratch), "a live pod keeps its files"
    env.store.delete("pods", "default", "scratch")
    env.wait_for(lambda: not os.path.exists(env.ctx.config.path("pods", uid)), what="pod dir removed")
