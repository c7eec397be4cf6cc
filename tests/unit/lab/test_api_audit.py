# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's API audit log: one JSON line per request its clients send through the API proxy."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import urllib.parse

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.lab.audit import AuditLog, read_audit

SECRET_VALUE = "s3cr3t-Value-That-Must-Not-Leak"


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def configmap(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"key": "value"}}


@pytest.fixture
def core(lab):
    return client.CoreV1Api(config.new_client_from_config(config_file=lab.kubeconfig))


def raw(lab, method, path, body=None, token=True):
    """One request to the lab's API endpoint as a client without the kubernetes library would send it."""
    url = urllib.parse.urlsplit(lab.api_server)
    connection = http.client.HTTPSConnection(url.hostname, url.port, timeout=10,
                                             context=ssl.create_default_context(cafile=lab.cluster.pki.ca_cert))
    headers = {"Content-Type": "application/json", "User-Agent": "audit-test"}
    if token:
        headers["Authorization"] = "Bearer " + lab.token
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_every_request_is_recorded_with_its_verb_and_outcome(lab, core):
    core.create_namespaced_config_map("default", configmap("cm"))
    core.read_namespaced_config_map("cm", "default")
    core.list_namespaced_config_map("default", label_selector="a=b")
    core.patch_namespaced_config_map("cm", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("cm", "default")
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("cm", "default")
    assert raw(lab, "GET", "/api/v1/namespaces/default/configmaps", token=False)[0] == 401
    entries = [e for e in lab.audit_entries() if e["path"].startswith("/api/v1/namespaces/default/configmaps")]
    assert [(e["verb"], e["method"], e["code"], e["write"]) for e in entries] == [
        ("create", "POST", 201, True), ("get", "GET", 200, False), ("get", "GET", 200, False), ("patch", "PATCH", 200, True),
        ("delete", "DELETE", 200, True), ("get", "GET", 404, False), ("get", "GET", 401, False)]
    listed = entries[2]
    assert listed["query"] == {"labelSelector": "a=b"} and listed["path"] == "/api/v1/namespaces/default/configmaps"
    assert entries[0]["user_agent"].startswith("OpenAPI-Generator/") and entries[-1]["user_agent"] == "audit-test"
    assert all(e["time"].endswith("Z") and e["dryRun"] is False for e in entries)


def test_writes_since_leaves_out_reads_dry_runs_and_refused_writes(lab, core):
    core.create_namespaced_config_map("default", configmap("first"))
    mark = lab.audit_mark()
    core.create_namespaced_config_map("default", configmap("second"))
    core.create_namespaced_config_map("default", configmap("dry"), dry_run="All")
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("first"))
    assert caught.value.status == 409
    core.read_namespaced_config_map("first", "default")
    status, _body = raw(lab, "GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
    assert status == 200
    entries = lab.audit_entries()[mark:]
    assert [(e["verb"], e["code"], e["dryRun"]) for e in entries] == [
        ("create", 201, False), ("create", 201, True), ("create", 409, False), ("get", 200, False), ("watch", 200, False)]
    assert [e["path"] for e in lab.writes_since(mark)] == ["/api/v1/namespaces/default/configmaps"]
    assert lab.store.try_get("configmaps", "default", "dry") is None


def test_secret_values_never_reach_the_log(lab, core):
    body = {"metadata": {"name": "s3", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}})}},
        "data": {"AWS_ACCESS_KEY_ID": _b64(SECRET_VALUE)}, "stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}}
    core.create_namespaced_secret("default", body)
    core.patch_namespaced_secret("s3", "default", {"stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE + "3"}})
    with open(lab.audit_log, encoding="utf-8") as handle:
        text = handle.read()
    assert "/api/v1/namespaces/default/secrets" in text
    for leaked in (SECRET_VALUE, _b64(SECRET_VALUE)):
        assert leaked not in text
    assert not any("body" in entry for entry in lab.audit_entries())
    # The Secret itself keeps its values.
    stored = lab.store.get("secrets", "default", "s3")
    assert base64.b64decode(stored["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == SECRET_VALUE + "3"


def test_audit_log_is_thread_safe_and_line_per_request(tmp_path):
    path = str(tmp_path / "audit.log")
    log = AuditLog(path)

    def write(worker):
        for index in range(200):
            log.record(verb="get", method="GET", path="/api/v1/x/%d/%d" % (worker, index), query={}, dry_run=False, write=False,
                       code=200, user_agent="t")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = read_audit(path)
    assert len(entries) == 800 and len({e["path"] for e in entries}) == 800
    log.close()
    log.record(verb="get", method="GET", path="/late", query={}, dry_run=False, write=False, code=200, user_agent="t")
    assert len(read_audit(path)) == 800
    assert read_audit(str(tmp_path / "missing.log")) == []
