# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Watch over HTTP: chunked JSON lines, resourceVersion semantics, 410, bookmarks, selectors."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tests.lab.kube import store as store_module

from .test_api_support import api, configmap, widget  # noqa: F401 pylint: disable=unused-import


def _collect(api, *, count, timeout=5, **kwargs):
    """Events of a CoreV1Api configmap watch, stopped after ``count`` events."""
    events = []
    watcher = watch.Watch()
    for event in watcher.stream(api.core.list_namespaced_config_map, "default", timeout_seconds=timeout, **kwargs):
        events.append((event["type"], event["object"].metadata.name, event["object"].metadata.resource_version))
        if len(events) >= count:
            watcher.stop()
    return events


def test_watch_streams_added_modified_deleted(api):
    mark = api.store.resource_version

    def change():
        time.sleep(0.2)
        api.store.create("configmaps", configmap("a"))
        api.store.modify("configmaps", "default", "a", lambda o: o.update(data={"key": "new"}))
        api.store.delete("configmaps", "default", "a")

    thread = threading.Thread(target=change)
    thread.start()
    events = _collect(api, count=3, resource_version=mark)
    thread.join()
    assert [(t, n) for t, n, _rv in events] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    rvs = [int(rv) for _t, _n, rv in events]
    assert rvs == sorted(rvs) and rvs[0] > int(mark)


def test_watch_without_resource_version_starts_with_the_current_state(api):
    api.store.create("configmaps", configmap("old-1"))
    api.store.create("configmaps", configmap("old-2"))
    events = _collect(api, count=2)
    assert [(t, n) for t, n, _rv in events] == [("ADDED", "old-1"), ("ADDED", "old-2")]


def test_watch_from_a_resource_version_replays_later_events_only(api):
    api.store.create("configmaps", configmap("before"))
    mark = api.store.resource_version
    api.store.create("configmaps", configmap("after"))
    api.store.modify("configmaps", "default", "before", lambda o: o.update(data={"key": "x"}))
    events = _collect(api, count=2, resource_version=mark)
    assert [(t, n) for t, n, _rv in events] == [("ADDED", "after"), ("MODIFIED", "before")]


def test_too_old_resource_version_is_410_expired(api, monkeypatch):
    monkeypatch.setattr(store_module, "EVENT_HISTORY", 5)
    fresh = store_module.Store(api.store.registry)
    fresh.create("namespaces", {"metadata": {"name": "default"}})
    for index in range(20):
        fresh.create("configmaps", configmap("cm-%d" % index))
    api.server.store = fresh
    status, _headers, text = api.raw("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=2&timeoutSeconds=2")
    assert status == 200
    event = json.loads(text.strip().splitlines()[0]) if isinstance(text, str) else text
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    assert "too old resource version" in event["object"]["message"]
    with pytest.raises(ApiException) as caught:
        for _event in watch.Watch().stream(api.core.list_namespaced_config_map, "default", resource_version="2", timeout_seconds=2):
            pass
    assert caught.value.status == 410


def test_label_selector_transitions_become_added_and_deleted(api):
    api.store.create("configmaps", configmap("x", labels={"app": "other"}))
    mark = api.store.resource_version

    def change():
        time.sleep(0.2)
        api.store.modify("configmaps", "default", "x", lambda o: o["metadata"].update(labels={"app": "db"}))
        api.store.modify("configmaps", "default", "x", lambda o: o.update(data={"k": "v"}))
        api.store.modify("configmaps", "default", "x", lambda o: o["metadata"].update(labels={"app": "gone"}))

    thread = threading.Thread(target=change)
    thread.start()
    events = _collect(api, count=3, resource_version=mark, label_selector="app=db")
    thread.join()
    assert [t for t, _n, _rv in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_timeout_seconds_ends_the_stream(api):
    started = time.monotonic()
    status, _headers, text = api.raw("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&resourceVersion="
                                     + api.store.resource_version)
    elapsed = time.monotonic() - started
    assert status == 200 and text == "" and 0.9 <= elapsed < 3


def test_bookmarks_and_dynamic_client_watch(api):
    api.server.bookmark_interval = 0.2
    widgets = api.resource("lab.example.com/v1beta2", "Widget")
    status, _headers, text = api.raw("GET", "/apis/lab.example.com/v1beta2/widgets?watch=1&allowWatchBookmarks=true&timeoutSeconds=1"
                                     "&resourceVersion=" + api.store.resource_version)
    events = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and events and {e["type"] for e in events} == {"BOOKMARK"}
    assert events[0]["object"]["kind"] == "Widget" and events[0]["object"]["metadata"]["resourceVersion"] == api.store.resource_version

    def change():
        time.sleep(0.2)
        widgets.create(widget("w"), namespace="default")

    thread = threading.Thread(target=change)
    thread.start()
    seen = []
    for event in widgets.watch(namespace="default", timeout=5, resource_version=api.store.resource_version):
        seen.append((event["type"], event["object"].metadata.name, event["object"].spec.dataEngine))
        break
    thread.join()
    assert seen == [("ADDED", "w", "v1")]


def test_send_initial_events_ends_with_an_annotated_bookmark(api):
    api.store.create("configmaps", configmap("existing"))
    status, _headers, text = api.raw("GET", "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true"
                                     "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1")
    events = [json.loads(line) for line in text.splitlines()]
    assert status == 200
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "existing"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_of_one_object_by_field_selector(api):
    api.store.create("configmaps", configmap("one"))
    api.store.create("configmaps", configmap("two"))
    events = _collect(api, count=1, field_selector="metadata.name=two")
    assert [(t, n) for t, n, _rv in events] == [("ADDED", "two")]
