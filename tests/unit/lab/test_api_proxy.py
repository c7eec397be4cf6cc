# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault-injecting proxy in front of the real API server: plain requests, watches and
``kubectl exec`` pass through unchanged; injected faults answer as the old lab server did."""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import kubernetes
import pytest
import urllib3
import yaml

from tests.lab import node_exec
from tests.lab.api_client import ApiClient
from tests.lab.api_proxy import ApiProxy
from tests.lab.control_plane import build
from tests.lab.faults import Faults
from tests.lab.lab import seed_cluster_dir
from tests.lab import api_errors as errors

NAMESPACE = "default"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, lab_template):
    state = str(tmp_path_factory.mktemp("proxy"))
    # Seeded from the lab template: bootstrapped in seconds instead of ~20 s.
    plane = node_exec.control_plane(seed_cluster_dir(lab_template(), os.path.join(state, "cluster")), state_dir=state)
    plane.start()
    yield plane
    plane.stop()


@pytest.fixture(scope="module")
def proxy(cluster):
    server = ApiProxy(cluster.api_server, cluster.pki.ca_cert, cluster.pki.path("apiserver.crt"), cluster.pki.path("apiserver.key"),
                      Faults())
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def faults(proxy):
    yield proxy.faults
    proxy.faults.clear()


@pytest.fixture(scope="module")
def kubeconfig(cluster, proxy, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("proxy-kubeconfig") / "kubeconfig")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "lab",
            "clusters": [{"name": "lab", "cluster": {"server": proxy.url, "certificate-authority": cluster.pki.ca_cert}}],
            "users": [{"name": "admin", "user": {"token": cluster.pki.token("admin")}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}]}, handle)
    return path


@pytest.fixture(scope="module")
def client(kubeconfig):
    api = ApiClient.from_kubeconfig(kubeconfig)
    yield api
    api.stop()


def kubectl(kubeconfig, *args, stdin=None, env=None):
    return subprocess.run([build.binary("kubectl"), "--kubeconfig", kubeconfig, *args], env=dict(os.environ, **(env or {})),
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def raw(cluster, proxy, method, path, body=None):
    """(status, headers, decoded body) of one request through the proxy, errors included."""
    request = urllib.request.Request(proxy.url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + cluster.pki.token("admin"), "Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=cluster.pki.ca_cert)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def configmap(name, **data):
    return {"metadata": {"name": name, "namespace": NAMESPACE}, "data": data}


def watchers(cluster, resource):
    """How many watches on ``resource`` the API server is serving (its long-running request gauge)."""
    status, text = cluster.request("/metrics")
    assert status == 200, text
    pattern = r'^apiserver_longrunning_requests\{([^}]*)\} (\d+)'
    return sum(int(count) for labels, count in re.findall(pattern, text, re.M)
               if 'resource="%s"' % resource in labels and 'verb="WATCH"' in labels)


def test_get_list_and_create_pass_through(client, proxy):
    client.create("configmaps", configmap("plain", k="v"))
    assert client.get("configmaps", NAMESPACE, "plain")["data"] == {"k": "v"}
    assert "plain" in [item["metadata"]["name"] for item in client.list("configmaps", NAMESPACE)[0]]
    assert ("POST", "/api/v1/namespaces/default/configmaps", 201) in proxy.requests
    assert ("GET", "/api/v1/namespaces/default/configmaps/plain", 200) in proxy.requests


def test_kubectl_get_raw_version_goes_through_the_proxy(kubeconfig, proxy):
    result = kubectl(kubeconfig, "get", "--raw", "/version")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gitVersion"].startswith("v1.36.")
    assert ("GET", "/version", 200) in proxy.requests


def test_a_watch_relays_events_as_they_happen_and_closes_upstream_with_the_client(cluster, client, proxy):
    before = watchers(cluster, "podtemplates")
    watch = client.watch("podtemplates", NAMESPACE, field_selector="metadata.name=live")
    try:
        deadline = time.monotonic() + 10
        while not any(m == "GET" and "watch=true" in p and s == 200 for m, p, s in proxy.requests) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watchers(cluster, "podtemplates") == before + 1
        started = time.monotonic()
        client.create("podtemplates", {"metadata": {"name": "live", "namespace": NAMESPACE},
                                       "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}})
        event = watch.next(timeout=2)
        assert event is not None and event[0] == "ADDED" and event[1]["metadata"]["name"] == "live"
        assert time.monotonic() - started < 2
        client.delete("podtemplates", NAMESPACE, "live")
        assert watch.next(timeout=2)[0] == "DELETED"
    finally:
        watch.close()
    # The client's disconnect reaches the API server: its watch ends too.
    deadline = time.monotonic() + 10
    while watchers(cluster, "podtemplates") != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert watchers(cluster, "podtemplates") == before


def test_a_counted_500_fault_answers_the_old_servers_status_then_lets_requests_pass(cluster, client, proxy, faults):
    client.create("configmaps", configmap("flaky"))
    faults.add_api_fault(r"/configmaps/flaky$", status=500, count=2)
    for _attempt in range(2):
        status, _headers, body = raw(cluster, proxy, "GET", "/api/v1/namespaces/default/configmaps/flaky")
        assert status == 500
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Internal error occurred: injected fault", "reason": "InternalError", "code": 500}
    assert client.get("configmaps", NAMESPACE, "flaky")["metadata"]["name"] == "flaky"
    assert faults.api_faults() == []
    assert [s for m, p, s in proxy.requests if p == "/api/v1/namespaces/default/configmaps/flaky"][-3:] == [500, 500, 200]


def test_a_fault_applies_only_to_its_methods(cluster, client, proxy, faults):
    client.create("configmaps", configmap("guarded"))
    faults.add_api_fault(r"/configmaps/guarded$", status=503, methods=["delete"])
    assert client.get("configmaps", NAMESPACE, "guarded")["metadata"]["name"] == "guarded"
    with pytest.raises(errors.ApiError) as caught:
        client.delete("configmaps", NAMESPACE, "guarded")
    assert caught.value.code == 503
    assert raw(cluster, proxy, "DELETE", "/api/v1/namespaces/default/configmaps/guarded")[2]["reason"] == "ServiceUnavailable"
    faults.clear()
    client.delete("configmaps", NAMESPACE, "guarded")
    assert client.try_get("configmaps", NAMESPACE, "guarded") is None


def test_a_429_fault_carries_retry_after_and_the_write_does_not_happen(cluster, client, proxy, faults):
    faults.add_api_fault(r"/namespaces/default/configmaps$", status=429, methods=["POST"], count=1)
    status, headers, body = raw(cluster, proxy, "POST", "/api/v1/namespaces/default/configmaps", configmap("throttled"))
    assert status == 429 and headers["Retry-After"] == "1"
    assert body["reason"] == "TooManyRequests" and body["details"] == {"retryAfterSeconds": 1}
    assert client.try_get("configmaps", NAMESPACE, "throttled") is None
    assert raw(cluster, proxy, "POST", "/api/v1/namespaces/default/configmaps", configmap("throttled"))[0] == 201


def test_discovery_and_version_are_never_faulted(cluster, proxy, faults):
    faults.add_api_fault(r".*", status=500)
    assert raw(cluster, proxy, "GET", "/api")[0] == 200
    assert raw(cluster, proxy, "GET", "/apis/apps/v1")[0] == 200
    assert raw(cluster, proxy, "GET", "/version")[0] == 200
    assert raw(cluster, proxy, "GET", "/api/v1/namespaces")[0] == 500


def test_a_timeout_fault_holds_then_drops_the_connection(cluster, client, proxy, faults):
    faults.add_api_fault(r"/configmaps$", timeout=0.5, count=1)
    connection = http.client.HTTPSConnection(proxy.url.split("//")[1], timeout=10,
                                             context=ssl.create_default_context(cafile=cluster.pki.ca_cert))
    started = time.monotonic()
    try:
        connection.request("GET", "/api/v1/namespaces/default/configmaps", headers={"Authorization": "Bearer " + cluster.pki.token("admin")})
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            connection.getresponse()
    finally:
        connection.close()
    assert time.monotonic() - started >= 0.45
    assert proxy.requests[-1] == ("GET", "/api/v1/namespaces/default/configmaps", 0)
    # The fault was used up: the next call works.
    assert isinstance(client.list("configmaps", NAMESPACE)[0], list)


@pytest.fixture(scope="module")
def shell_pod(client):
    client.create("pods", {"metadata": {"name": "shell", "namespace": NAMESPACE},
                           "spec": {"containers": [{"name": "main", "image": "busybox"}]}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = client.get("pods", NAMESPACE, "shell")
        if (pod.get("status") or {}).get("phase") == "Running":
            return pod
        time.sleep(0.2)
    raise AssertionError("pod shell not Running: %s" % pod.get("status"))


# kubectl speaks websocket (a GET upgrade) unless told to use SPDY (a POST upgrade).
EXEC_PROTOCOLS = pytest.mark.parametrize("websockets, method", [("true", "GET"), ("false", "POST")], ids=["websocket", "spdy"])


def _upgraded(proxy, method, count_before):
    return [r for r in proxy.requests[count_before:] if r[0] == method and r[1].startswith("/api/v1/namespaces/default/pods/shell/exec")
            and r[2] == 101]


@EXEC_PROTOCOLS
def test_kubectl_exec_runs_through_the_upgraded_connection(kubeconfig, proxy, shell_pod, websockets, method):
    mark = len(proxy.requests)
    result = kubectl(kubeconfig, "exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                     env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websockets})
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"
    assert "err" in result.stderr
    assert len(_upgraded(proxy, method, mark)) == 1, proxy.requests[mark:]


@EXEC_PROTOCOLS
def test_kubectl_exec_passes_stdin_through_the_proxy(kubeconfig, proxy, shell_pod, websockets, method):
    mark = len(proxy.requests)
    result = kubectl(kubeconfig, "exec", "-i", "shell", "--", "tr", "a-z", "A-Z", stdin="through the proxy\n",
                     env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": websockets})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "THROUGH THE PROXY\n"
    assert len(_upgraded(proxy, method, mark)) == 1, proxy.requests[mark:]


def test_a_held_fault_fails_the_kubernetes_client_after_its_retries(kubeconfig, proxy, faults):
    # What kubernetes.core sees: urllib3 retries a dropped idempotent request three times, four holds in all.
    core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeconfig))
    faults.add_api_fault(r"/namespaces/default/secrets$", timeout=0.3)
    mark = len(proxy.requests)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
        core.list_namespaced_secret(NAMESPACE)
    assert "RemoteDisconnected" in str(caught.value)
    assert time.monotonic() - started >= 4 * 0.3 - 0.05
    assert proxy.requests[mark:] == [("GET", "/api/v1/namespaces/default/secrets", 0)] * 4
    faults.clear()
    with pytest.raises(kubernetes.client.ApiException) as caught:
        faults.add_api_fault(r"/namespaces/default/secrets$", status=503, count=1)
        core.list_namespaced_secret(NAMESPACE)
    assert caught.value.status == 503 and '"reason":"ServiceUnavailable"' in caught.value.body
    assert isinstance(core.list_namespaced_secret(NAMESPACE).items, list)
