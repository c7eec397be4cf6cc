# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Injected API faults: error statuses, 429 with Retry-After, held-then-dropped connections."""

from __future__ import annotations

import http.client
import time

import pytest
import urllib3
from kubernetes.client.rest import ApiException

from .test_api_support import api, configmap  # noqa: F401 pylint: disable=unused-import


def test_status_faults_answer_a_status_object(api):
    api.store.create("configmaps", configmap("cm"))
    fault = api.faults.add_api_fault(r"/configmaps/cm$", status=503, methods=["GET"])
    with pytest.raises(ApiException) as caught:
        api.core.read_namespaced_config_map("cm", "default")
    assert caught.value.status == 503
    assert '"reason":"ServiceUnavailable"' in caught.value.body
    # Other methods and paths are untouched; the fault stays until cleared.
    api.core.patch_namespaced_config_map("cm", "default", {"data": {"k": "v"}})
    assert api.core.list_namespaced_config_map("default").items
    with pytest.raises(ApiException):
        api.core.read_namespaced_config_map("cm", "default")
    assert api.faults.api_faults()[0]["id"] == fault.id
    api.faults.clear()
    assert api.core.read_namespaced_config_map("cm", "default").data == {"k": "v", "key": "value"}


def test_counted_faults_expire(api):
    api.store.create("configmaps", configmap("cm"))
    api.faults.add_api_fault(r"/configmaps", status=500, count=2)
    for _attempt in range(2):
        with pytest.raises(ApiException) as caught:
            api.core.read_namespaced_config_map("cm", "default")
        assert caught.value.status == 500 and "InternalError" in caught.value.body
    assert api.core.read_namespaced_config_map("cm", "default").metadata.name == "cm"


def test_429_carries_retry_after(api):
    api.faults.add_api_fault(r"/namespaces/default/configmaps", status=429, methods=["POST"], count=1)
    status, headers, body = api.raw("POST", "/api/v1/namespaces/default/configmaps", configmap("cm"))
    assert status == 429 and headers["Retry-After"] == "1"
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 1
    assert api.store.try_get("configmaps", "default", "cm") is None
    status, _headers, _body = api.raw("POST", "/api/v1/namespaces/default/configmaps", configmap("cm"))
    assert status == 201


def test_faults_do_not_touch_discovery_or_health(api):
    api.faults.add_api_fault(r".*", status=500)
    assert api.raw("GET", "/api")[0] == 200
    assert api.raw("GET", "/apis")[0] == 200
    assert api.raw("GET", "/apis/apps/v1")[0] == 200
    assert api.raw("GET", "/healthz")[0] == 200
    assert api.raw("GET", "/api/v1/namespaces")[0] == 500


def test_timeout_fault_holds_then_drops_the_connection(api):
    api.faults.add_api_fault(r"/configmaps", timeout=0.5, count=1)
    connection = http.client.HTTPConnection(api.server.url.split("//")[1], timeout=10)
    started = time.monotonic()
    connection.request("GET", "/api/v1/namespaces/default/configmaps", headers={"Authorization": "Bearer " + api.server.token})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        connection.getresponse()
    assert time.monotonic() - started >= 0.45
    connection.close()
    entries = [e for e in api.audit() if e["path"] == "/api/v1/namespaces/default/configmaps"]
    assert entries[-1]["code"] == 0
    # A client with a shorter timeout gives up first; the fault was used up, so the next call works.
    assert api.core.list_namespaced_config_map("default").items == []


def test_a_held_fault_fails_the_kubernetes_client_after_its_retries(api):
    fault = api.faults.add_api_fault(r"/configmaps", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
        api.core.list_namespaced_config_map("default")
    assert "RemoteDisconnected" in str(caught.value)
    # urllib3 retries a dropped idempotent request three times: four held requests in all.
    assert time.monotonic() - started >= 4 * 0.3 - 0.05
    assert len([e for e in api.audit() if e["code"] == 0]) == 4
    assert api.faults.api_faults()[0]["id"] == fault.id
