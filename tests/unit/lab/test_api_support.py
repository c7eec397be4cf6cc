# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures of the API server tests: a store with the lab's admission chain behind a started ApiServer.

Imported by the other ``test_api_*`` modules (``from .test_api_support import ...``);
it holds no tests itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import kubernetes
import pytest
from kubernetes.dynamic import DynamicClient

from tests.lab.context import LabConfig, LabContext
from tests.lab.faults import Faults
from tests.lab.kube import builtin_validation, schema
from tests.lab.audit import read_audit
from tests.lab.kube.resources import Registry
from tests.lab.kube.server import ApiServer
from tests.lab.kube.store import Store

# A small CRD in the style of Longhorn's (enum, int64-as-string, status subresource, printer columns).
WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.lab.example.com"},
    "spec": {
        "group": "lab.example.com",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList", "shortNames": ["wd"]},
        "versions": [{
            "name": "v1beta2",
            "served": True,
            "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "State", "type": "string", "jsonPath": ".status.state"},
                {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "string", "format": "int64"},
                            "frontend": {"type": "string", "enum": ["blockdev", "iscsi", "nvmf", "ublk", ""]},
                            "replicas": {"type": "integer", "minimum": 1, "maximum": 20},
                            "dataEngine": {"type": "string", "default": "v1", "enum": ["v1", "v2"]},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "nullable": True},
                            "nodeSelector": {"type": "array", "items": {"type": "string"}},
                            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                            "budget": {"x-kubernetes-int-or-string": True},
                            "name": {"type": "string", "maxLength": 10, "pattern": "^[a-z]+$"},
                            "createdAt": {"type": "string", "format": "date-time"},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                    "status": {
                        "type": "object",
                        "properties": {
                            "state": {"type": "string"},
                            "conditions": {"type": "array", "nullable": True, "items": {
                                "type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}},
                        },
                    },
                },
            }},
        }],
    },
}


@dataclass
class ApiEnv:
    store: Store
    server: ApiServer
    faults: Faults
    ctx: LabContext
    kubeconfig: str
    audit_path: str
    client: kubernetes.client.ApiClient
    dyn: DynamicClient
    core: kubernetes.client.CoreV1Api

    def audit(self):
        return read_audit(self.audit_path)

    def resource(self, api_version, kind):
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def raw(self, method, path, body=None, headers=None, token=True):
        """One HTTP request with urllib: ``(status, headers, parsed body or text)``."""
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        if token:
            all_headers["Authorization"] = "Bearer %s" % (self.server.token if token is True else token)
        request = urllib.request.Request(self.server.url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, reply_headers, text = response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, reply_headers, text = exc.code, exc.headers, exc.read().decode()
        try:
            return status, reply_headers, json.loads(text)
        except ValueError:
            return status, reply_headers, text


def make_env(tmp_path, *, tls=False, crds=(WIDGET_CRD,)):
    store = Store(Registry())
    # The lab's admission order (lab.py): prune/default, schema validation, built-in defaulting/validation.
    store.add_mutator(schema.schema_mutator)
    store.add_validator(schema.schema_validator)
    builtin_validation.register(store)
    faults = Faults()
    ctx = LabContext(config=LabConfig(state_dir=str(tmp_path)), store=store, faults=faults)
    audit_path = os.path.join(str(tmp_path), "audit.log")
    server = ApiServer(ctx, audit_path=audit_path, tls=tls)
    server.start()
    kubeconfig = os.path.join(str(tmp_path), "kubeconfig")
    server.write_kubeconfig(kubeconfig)
    store.create("namespaces", {"metadata": {"name": "default"}})
    for crd in crds:
        store.create("customresourcedefinitions", crd)
    client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    return ApiEnv(store, server, faults, ctx, kubeconfig, audit_path, client, DynamicClient(client), kubernetes.client.CoreV1Api(client))


@pytest.fixture
def api(tmp_path):
    env = make_env(tmp_path)
    try:
        yield env
    finally:
        env.client.close()
        env.server.stop()


def configmap(name, namespace="default", labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "data": data or {"key": "value"}}


def deployment(name, namespace="default", replicas=1, image="nginx:1.27"):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image, "env": [{"name": "A", "value": "1"}]}]}},
        },
    }


def widget(name, namespace="default", **spec):
    body = {"size": "1073741824"}
    body.update(spec)
    return {"apiVersion": "lab.example.com/v1beta2", "kind": "Widget", "metadata": {"name": name, "namespace": namespace}, "spec": body}
