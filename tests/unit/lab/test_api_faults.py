# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``Lab.api_fault``: faults reach the collection's kubeconfig and show in the audit log.

The proxy's own handling of each fault kind is tested in test_api_proxy.py.
"""

from __future__ import annotations

import http.client
import time

import pytest
from kubernetes.client.rest import ApiException

from .test_api_audit import configmap, core, raw  # noqa: F401 pylint: disable=unused-import


def test_a_status_fault_answers_a_status_object_until_cleared(lab, core):
    core.create_namespaced_config_map("default", configmap("cm"))
    fault = lab.api_fault(r"/configmaps/cm$", status=503, methods=["GET"])
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("cm", "default")
    assert caught.value.status == 503
    assert '"reason":"ServiceUnavailable"' in caught.value.body.replace(" ", "")
    # Other methods and paths are untouched; the fault stays until cleared.
    core.patch_namespaced_config_map("cm", "default", {"data": {"k": "v"}})
    assert core.list_namespaced_config_map("default").items
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("cm", "default")
    assert lab.faults.api_faults()[0]["id"] == fault.id
    lab.clear_faults()
    assert core.read_namespaced_config_map("cm", "default").data == {"k": "v", "key": "value"}
    codes = [e["code"] for e in lab.audit_entries() if e["path"] == "/api/v1/namespaces/default/configmaps/cm"]
    assert codes == [503, 200, 503, 200]


def test_counted_faults_expire_and_a_refused_write_stores_nothing(lab, core):
    lab.api_fault(r"/namespaces/default/configmaps", status=429, methods=["POST"], count=2)
    for _attempt in range(2):
        status, _body = raw(lab, "POST", "/api/v1/namespaces/default/configmaps", configmap("cm"))
        assert status == 429
    assert lab.store.try_get("configmaps", "default", "cm") is None
    mark = lab.audit_mark()
    core.create_namespaced_config_map("default", configmap("cm"))
    assert [e["code"] for e in lab.writes_since(mark)] == [201]
    assert lab.faults.api_faults() == []


def test_a_timeout_fault_drops_the_connection_and_is_logged_with_code_0(lab, core):
    lab.api_fault(r"/configmaps", timeout=0.5, count=1)
    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        raw(lab, "GET", "/api/v1/namespaces/default/configmaps")
    assert time.monotonic() - started >= 0.45
    entries = [e for e in lab.audit_entries() if e["path"] == "/api/v1/namespaces/default/configmaps"]
    assert entries[-1]["code"] == 0
    # The fault was used up: the next call works.
    assert core.list_namespaced_config_map("default").kind == "ConfigMapList"
