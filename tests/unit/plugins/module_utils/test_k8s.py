# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _k8s.K8sAccess: retries on 429/5xx, API messages in errors, batch waits."""

from __future__ import annotations

import json

import pytest

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _k8s
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import K8sAccess, LonghornError, WaitTimeout, api_error_message


def api_error(status, message=None, cls=DynamicApiError):
    exc = ApiException(status=status, reason="Reason%d" % status)
    exc.body = json.dumps({"kind": "Status", "message": message}) if message else None
    return cls(exc)


class FakeClient:
    """``get`` answers from a script: each item is an exception to raise or a value to return."""

    def __init__(self, script=()):
        self.script = list(script)
        self.calls = []

    def resource(self, kind, api_version):
        return (kind, api_version)

    def _next(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    get = create = patch = delete = _next


class FakeModule:
    check_mode = False


@pytest.fixture
def make_access(monkeypatch):
    def _make(script):
        client = FakeClient(script)
        monkeypatch.setattr(_k8s, "get_api_client", lambda module: client)
        sleeps = []
        return K8sAccess(FakeModule(), sleep=sleeps.append), client, sleeps
    return _make


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_transient_errors_then_succeeds(make_access, status):
    access, client, sleeps = make_access([api_error(status), api_error(status), {"metadata": {"name": "a"}}])
    assert access.get("Volume", "longhorn.io/v1beta2", "a", namespace="ns") == {"metadata": {"name": "a"}}
    assert len(client.calls) == 3 and len(sleeps) == 2
    assert all(0 <= delay <= access.max_delay for delay in sleeps)


def test_gives_up_after_the_retries_with_the_api_message(make_access):
    access, client, _sleeps = make_access([api_error(503, "etcd is sad")] * 10)
    with pytest.raises(LonghornError, match="Failed to get Volume a: etcd is sad") as info:
        access.get("Volume", "longhorn.io/v1beta2", "a")
    assert info.value.details["status"] == 503
    assert len(client.calls) == access.retries + 1


def test_client_errors_are_not_retried(make_access):
    access, client, _sleeps = make_access([api_error(422, 'admission webhook denied: backup target default is not available')])
    with pytest.raises(LonghornError, match="Failed to create SystemBackup x: admission webhook denied: backup target default"):
        access.create("SystemBackup", "longhorn.io/v1beta2", {"metadata": {"name": "x"}})
    assert len(client.calls) == 1


def test_not_found_is_none(make_access):
    access, _client, _sleeps = make_access([api_error(404, "gone", cls=NotFoundError), api_error(404, cls=NotFoundError)])
    assert access.get("Volume", "longhorn.io/v1beta2", "a") is None
    assert access.delete("Volume", "longhorn.io/v1beta2", "a") is None


def test_api_error_message_without_a_status_body():
    assert api_error_message(api_error(500)) == "500 Reason500"


def _items(*states):
    return {"items": [{"metadata": {"name": n}, "status": {"state": s}} for n, s in states]}


def test_wait_for_polls_the_batch_with_one_list_per_round(make_access):
    rounds = [_items(("a", "InProgress"), ("b", "InProgress"), ("other", "Error")),
              _items(("a", "Completed"), ("b", "InProgress")),
              _items(("a", "Completed"), ("b", "Completed"))]
    access, client, sleeps = make_access(rounds)
    done = access.wait_for("Backup", "longhorn.io/v1beta2", ["a", "b"], lambda o: o["status"]["state"] == "Completed",
                           namespace="ns", sleep=3)
    assert sorted(done) == ["a", "b"]
    assert len(client.calls) == 3 and sleeps == [3, 3]


def test_wait_for_timeout_names_the_pending_objects(make_access):
    ticks = iter(range(100))
    access, _client, _sleeps = make_access([_items(("a", "Completed"), ("b", "InProgress"))] * 5)
    with pytest.raises(WaitTimeout, match=r"waiting for Backup: b$") as info:
        access.wait_for("Backup", "longhorn.io/v1beta2", ["a", "b"], lambda o: o["status"]["state"] == "Completed",
                        timeout=2, clock=lambda: next(ticks))
    assert info.value.details["pending"] == ["b"]
    assert info.value.details["last"]["b"]["status"]["state"] == "InProgress"


def test_wait_for_predicate_errors_propagate(make_access):
    access, _client, _sleeps = make_access([_items(("a", "Error"))])

    def predicate(obj):
        if obj["status"]["state"] == "Error":
            raise LonghornError("a failed")
        return True

    with pytest.raises(LonghornError, match="a failed"):
        access.wait_for("Backup", "longhorn.io/v1beta2", ["a"], predicate)


def test_a_partial_list_is_refused(make_access):
    partial = {"metadata": {"continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", "remainingItemCount": 3},
               "items": [{"metadata": {"name": "a"}}]}
    access, _client, _sleeps = make_access([partial])
    with pytest.raises(LonghornError, match=r"Failed to list Volume: the API server returned a partial list \(metadata.continue "
                                            r"is set, 3 more item\(s\)\)"):
        access.list("Volume", "longhorn.io/v1beta2", namespace="longhorn-system")
