# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The API audit log: one JSON line per request, Secret values masked."""

from __future__ import annotations

import base64
import json
import threading

from tests.lab.audit import MASK, AuditLog, mask_body, read_audit

from .test_api_support import api, configmap  # noqa: F401 pylint: disable=unused-import

SECRET_VALUE = "s3cr3t-Value-That-Must-Not-Leak"


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def test_every_request_is_recorded_with_its_verb_and_outcome(api):
    configmaps = api.resource("v1", "ConfigMap")
    configmaps.create(configmap("cm"), namespace="default")
    configmaps.get(name="cm", namespace="default")
    configmaps.get(namespace="default", label_selector="a=b")
    configmaps.patch(body={"data": {"x": "y"}}, name="cm", namespace="default", content_type="application/merge-patch+json")
    configmaps.delete(name="cm", namespace="default")
    api.raw("GET", "/api/v1/namespaces/default/configmaps/cm")
    api.raw("GET", "/api/v1/namespaces", token=False)
    entries = [e for e in api.audit() if "/configmaps" in e["path"] or e["code"] == 401]
    assert [(e["verb"], e["method"], e["code"], e["write"]) for e in entries] == [
        ("create", "POST", 201, True), ("get", "GET", 200, False), ("list", "GET", 200, False), ("patch", "PATCH", 200, True),
        ("delete", "DELETE", 200, True), ("get", "GET", 404, False), ("list", "GET", 401, False)]
    listed = entries[2]
    assert listed["query"] == {"labelSelector": "a=b"} and listed["path"] == "/api/v1/namespaces/default/configmaps"
    assert entries[0]["body"]["metadata"]["name"] == "cm" and "body" not in entries[1]
    assert entries[3]["body"] == {"data": {"x": "y"}}
    assert entries[0]["user_agent"].startswith("OpenAPI-Generator/")
    assert all(e["time"].endswith("Z") and e["dryRun"] is False for e in entries)


def test_watch_and_deletecollection_verbs(api):
    api.raw("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
    api.raw("DELETE", "/api/v1/namespaces/default/configmaps")
    verbs = [(e["verb"], e["write"]) for e in api.audit() if e["path"] == "/api/v1/namespaces/default/configmaps"]
    assert verbs == [("watch", False), ("deletecollection", True)]


def test_secret_values_never_reach_the_log(api):
    secrets = api.resource("v1", "Secret")
    body = {"metadata": {"name": "s3", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}})}},
        "data": {"AWS_ACCESS_KEY_ID": _b64(SECRET_VALUE)}, "stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE}}
    secrets.create(body, namespace="default")
    secrets.patch(body=[{"op": "replace", "path": "/data/AWS_ACCESS_KEY_ID", "value": _b64(SECRET_VALUE + "2")}],
                  name="s3", namespace="default", content_type="application/json-patch+json")
    secrets.patch(body={"stringData": {"AWS_SECRET_ACCESS_KEY": SECRET_VALUE + "3"}}, name="s3", namespace="default",
                  content_type="application/merge-patch+json")
    secrets.server_side_apply(body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": "default"},
                                    "stringData": {"other": SECRET_VALUE}}, name="s3", namespace="default", field_manager="test")
    text = open(api.audit_path, encoding="utf-8").read()
    for leaked in (SECRET_VALUE, _b64(SECRET_VALUE), _b64(SECRET_VALUE + "2")):
        assert leaked not in text
    writes = [e for e in api.audit() if e["write"] and "/secrets" in e["path"]]
    assert len(writes) == 4
    created = writes[0]["body"]
    assert created["data"] == {"AWS_ACCESS_KEY_ID": MASK} and created["stringData"] == {"AWS_SECRET_ACCESS_KEY": MASK}
    last_applied = json.loads(created["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["stringData"] == {"AWS_SECRET_ACCESS_KEY": MASK}
    assert writes[1]["body"] == [{"op": "replace", "path": "/data/AWS_ACCESS_KEY_ID", "value": MASK}]
    # The Secret itself keeps its values.
    stored = api.store.get("secrets", "default", "s3")
    assert base64.b64decode(stored["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == SECRET_VALUE + "3"


def test_mask_body_only_touches_secrets():
    body = {"kind": "ConfigMap", "data": {"a": "b"}}
    assert mask_body(body, "configmaps") is body
    assert mask_body({"kind": "Secret", "data": {"a": "b"}}, None)["data"] == {"a": MASK}
    assert mask_body([{"op": "add", "path": "/data", "value": {"k": "v"}}], "secrets") == [{"op": "add", "path": "/data", "value": {"k": MASK}}]
    assert mask_body("raw text", "secrets") == MASK


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
