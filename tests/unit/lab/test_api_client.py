# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ApiClient against a real control plane (kine + kube-apiserver): the Store interface over HTTPS.

Nothing is skipped: without built binaries the fixture fails with the BuildError message.
"""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import queue
import threading
import time

import pytest

from tests.lab.api_client import ApiClient, ResourceType, api_error
from tests.lab.control_plane.cluster import ControlPlane
from tests.lab.lab import seed_cluster_dir
from tests.lab import api_errors as errors

GROUP = "lab.example.com"
_names = itertools.count()


def _crd(plural, kind, status=True):
    version = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if status:
        version["subresources"] = {"status": {}}
    return {"metadata": {"name": "%s.%s" % (plural, GROUP)},
            "spec": {"group": GROUP, "scope": "Namespaced", "versions": [version],
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"}}}


def _until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _cm(name, namespace, **labels):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {"k": "v"}}


@pytest.fixture(scope="module")
def cp(tmp_path_factory, lab_template):
    # Seeded from the lab template: bootstrapped in seconds instead of ~20 s.
    plane = ControlPlane(seed_cluster_dir(lab_template(), tmp_path_factory.mktemp("control-plane"))).start()
    yield plane
    plane.stop()


@pytest.fixture(scope="module")
def client(cp):
    api = ApiClient.from_kubeconfig(cp.kubeconfig)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def widgets(client):
    client.create("customresourcedefinitions", _crd("widgets", "Widget"))
    return _until(lambda: client.registry.by_plural("widgets", GROUP), what="widgets to be served")


@pytest.fixture
def ns(client):
    name = "t%d" % next(_names)
    client.create("namespaces", {"metadata": {"name": name}})
    return name


def test_from_kubeconfig_with_inline_ca_data(cp, tmp_path):
    with open(cp.pki.ca_cert, "rb") as handle:
        ca_data = base64.b64encode(handle.read()).decode()
    config = {"clusters": [{"name": "c", "cluster": {"server": cp.api_server, "certificate-authority-data": ca_data}}],
              "users": [{"name": "u", "user": {"token": cp.pki.token("admin")}}],
              "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"}
    (tmp_path / "kubeconfig").write_text(json.dumps(config))
    api = ApiClient.from_kubeconfig(str(tmp_path / "kubeconfig"))
    try:
        assert api.get("namespaces", None, "default")["metadata"]["name"] == "default"
    finally:
        api.stop()


def test_discovery_core_apps_and_rtype_forms(client):
    cms = client.registry.by_plural("configmaps")
    assert (cms.group, cms.version, cms.kind, cms.namespaced, cms.api_version, cms.key) == ("", "v1", "ConfigMap", True, "v1", ("", "configmaps"))
    deploy = client.registry.by_plural("deployments")
    assert (deploy.api_version, deploy.singular, deploy.has_status) == ("apps/v1", "deployment", True)
    assert set(deploy.subresources) >= {"status", "scale"}
    assert not client.registry.by_plural("namespaces").namespaced
    # "events" is served by core and events.k8s.io: core wins without a group.
    assert client.registry.by_plural("events").group == ""
    assert client.registry.by_plural("events", "events.k8s.io").group == "events.k8s.io"
    assert client.registry.by_plural("deploy") == deploy
    assert client._resolve(("apps", "deployments")) == client._resolve("deployments") == client._resolve(deploy) == deploy
    assert client.registry.by_plural("nosuchthings") is None
    with pytest.raises(errors.NotFound):
        client.get("nosuchthings", "default", "x")


def test_crd_becomes_resolvable_after_creation(client):
    assert client.registry.by_plural("gadgets", GROUP) is None
    client.create("customresourcedefinitions", _crd("gadgets", "Gadget", status=False))
    gadget = _until(lambda: client.registry.by_plural("gadgets"), what="gadgets in discovery")
    assert isinstance(gadget, ResourceType)
    assert (gadget.group, gadget.version, gadget.kind, gadget.subresources, gadget.has_status) == (GROUP, "v1", "Gadget", (), False)


def test_create_get_list_selectors_and_pagination(client, ns, monkeypatch):
    for index in range(12):
        client.create("configmaps", _cm("cm-%02d" % index, None, parity="even" if index % 2 == 0 else "odd"), namespace=ns)
    got = client.get("configmaps", ns, "cm-03")
    assert got["metadata"]["labels"] == {"parity": "odd"} and got["metadata"]["uid"]
    calls = []
    real = client.request
    monkeypatch.setattr(client, "request", lambda *a, **kw: calls.append(kw.get("query")) or real(*a, **kw))
    items, rv = client.list("configmaps", ns, page_size=5)
    assert len(calls) == 3 and calls[-1].get("continue")
    assert [o["metadata"]["name"] for o in items if o["metadata"]["name"].startswith("cm-")] == ["cm-%02d" % i for i in range(12)]
    assert int(rv) > 0 and all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in items)
    odd, _rv = client.list("configmaps", ns, label_selector="parity=odd", page_size=2)
    assert sorted(o["metadata"]["name"] for o in odd) == ["cm-%02d" % i for i in range(1, 12, 2)]
    one, _rv = client.list("configmaps", None, field_selector="metadata.name=cm-07")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in one] == [(ns, "cm-07")]


def test_dry_run_writes_nothing(client, ns):
    made = client.create("configmaps", _cm("dry", ns), dry_run=True)
    assert made["metadata"]["name"] == "dry" and client.try_get("configmaps", ns, "dry") is None
    client.create("configmaps", _cm("wet", ns))
    client.patch("configmaps", ns, "wet", {"data": {"k": "changed"}}, dry_run=True)
    client.modify("configmaps", ns, "wet", lambda o: o["data"].update(k="changed"), dry_run=True)
    client.delete("configmaps", ns, "wet", dry_run=True)
    assert client.get("configmaps", ns, "wet")["data"] == {"k": "v"}


def test_update_with_stale_resource_version_conflicts(client, ns):
    first = client.create("configmaps", _cm("u", ns))
    second = client.update("configmaps", dict(first, data={"k": "2"}))
    assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    with pytest.raises(errors.Conflict) as caught:
        client.update("configmaps", dict(first, data={"k": "3"}))
    assert caught.value.code == 409 and "the object has been modified" in str(caught.value)


def test_modify_retries_after_a_concurrent_change(client, ns):
    client.create("configmaps", _cm("m", ns))
    calls = []

    def mutate(obj):
        calls.append(obj["metadata"]["resourceVersion"])
        if len(calls) == 1:
            # Another writer gets in between this read and the PUT.
            threading.Thread(target=client.patch, args=("configmaps", ns, "m", {"data": {"other": "x"}})).run()
        obj["data"]["mine"] = "y"

    result = client.modify("configmaps", ns, "m", mutate)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert result["data"] == {"k": "v", "other": "x", "mine": "y"}


def test_one_client_shared_by_threads_loses_no_update(client, ns):
    client.create("configmaps", {"metadata": {"name": "counter", "namespace": ns}, "data": {"n": "0"}})
    failures = []

    def bump():
        try:
            for _index in range(5):
                client.modify("configmaps", ns, "counter", lambda o: o["data"].update(n=str(int(o["data"]["n"]) + 1)))
        except Exception as exc:  # pylint: disable=broad-except
            failures.append(exc)

    threads = [threading.Thread(target=bump) for _index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures and client.get("configmaps", ns, "counter")["data"]["n"] == "20"


def test_modify_raises_conflict_when_mutate_sets_a_foreign_rv(client, ns):
    client.create("configmaps", _cm("f", ns))
    calls = []

    def mutate(obj):
        calls.append(1)
        obj["metadata"]["resourceVersion"] = "1"
        obj["data"]["k"] = "lost"

    with pytest.raises(errors.Conflict):
        client.modify("configmaps", ns, "f", mutate)
    assert len(calls) == 1 and client.get("configmaps", ns, "f")["data"] == {"k": "v"}


def test_status_subresource_of_a_custom_resource(client, ns, widgets):
    assert widgets.has_status
    made = client.create(widgets, {"apiVersion": widgets.api_version, "kind": "Widget", "metadata": {"name": "w", "namespace": ns},
                                   "spec": {"size": 1}, "status": {"phase": "ignored"}})
    assert "status" not in made
    done = client.update(widgets, dict(made, status={"phase": "Ready"}), subresource="status")
    assert done["status"] == {"phase": "Ready"}
    # The main resource ignores status; the status subresource ignores spec.
    client.modify((GROUP, "widgets"), ns, "w", lambda o: o.update(status={"phase": "Nope"}, spec={"size": 2}))
    client.modify("widgets", ns, "w", lambda o: o.update(status={"phase": "Done"}, spec={"size": 3}), subresource="status")
    final = client.get(widgets, ns, "w")
    assert (final["spec"], final["status"]) == ({"size": 2}, {"phase": "Done"})


def test_patch_types(client, ns):
    client.create("configmaps", _cm("p", ns))
    assert client.patch("configmaps", ns, "p", {"data": {"a": "1", "k": None}})["data"] == {"a": "1"}
    assert client.patch("configmaps", ns, "p", [{"op": "add", "path": "/data/b", "value": "2"}], "json")["data"] == {"a": "1", "b": "2"}
    container = {"name": "main", "image": "busybox"}
    client.create("deployments", {"metadata": {"name": "d", "namespace": ns}, "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [container]}}}})
    side = {"name": "side", "image": "busybox"}
    patched = client.patch("deployments", ns, "d", {"spec": {"template": {"spec": {"containers": [side]}}}}, "strategic")
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["side", "main"]
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p", "namespace": ns}, "data": {"a": "mine"}}
    with pytest.raises(errors.Conflict) as caught:
        client.patch("configmaps", ns, "p", applied, "apply", field_manager="lab-test")
    assert "conflict" in str(caught.value).lower()
    out = client.patch("configmaps", ns, "p", applied, "apply", field_manager="lab-test", force=True)
    assert out["data"]["a"] == "mine"
    assert any(f["manager"] == "lab-test" and f["operation"] == "Apply" for f in out["metadata"]["managedFields"])


def test_delete_returns_the_object(client, ns):
    client.create("configmaps", dict(_cm("held", ns), metadata={"name": "held", "namespace": ns, "finalizers": ["lab.example.com/hold"]}))
    held = client.delete("configmaps", ns, "held")
    assert held["kind"] == "ConfigMap" and held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"]
    client.patch("configmaps", ns, "held", {"metadata": {"finalizers": None}})
    assert client.try_get("configmaps", ns, "held") is None
    plain = client.create("configmaps", _cm("plain", ns))
    gone = client.delete("configmaps", ns, "plain")
    assert gone["metadata"]["uid"] == plain["metadata"]["uid"] and gone["data"] == {"k": "v"}
    assert client.try_get("configmaps", ns, "plain") is None


def test_delete_precondition_uid_mismatch_conflicts(client, ns):
    client.create("configmaps", _cm("pre", ns))
    with pytest.raises(errors.Conflict) as caught:
        client.delete("configmaps", ns, "pre", preconditions={"uid": "00000000-0000-0000-0000-000000000000"})
    # The real server words it unlike the fake store ("Precondition failed: UID in precondition...").
    assert "the UID in the precondition (00000000-0000-0000-0000-000000000000) does not match the UID in record" in str(caught.value)
    assert client.try_get("configmaps", ns, "pre") is not None


def test_errors_carry_the_server_message(client, ns, cp):
    with pytest.raises(errors.NotFound) as caught:
        client.get("configmaps", ns, "absent")
    assert str(caught.value) == 'configmaps "absent" not found' and caught.value.code == 404
    client.create("configmaps", _cm("dup", ns))
    with pytest.raises(errors.AlreadyExists) as caught:
        client.create("configmaps", _cm("dup", ns))
    assert str(caught.value) == 'configmaps "dup" already exists' and caught.value.code == 409
    with pytest.raises(errors.Invalid) as caught:
        client.create("configmaps", _cm("Bad_Name", ns))
    assert str(caught.value).startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value')
    assert caught.value.causes[0][0] == "metadata.name" and caught.value.status()["code"] == 422
    restricted = ApiClient(cp.api_server, cp.pki.token("restricted"), cp.pki.ca_cert)
    try:
        with pytest.raises(errors.Forbidden) as caught:
            restricted.list("secrets", ns)
        assert 'User "lab-restricted" cannot list resource "secrets"' in str(caught.value) and caught.value.code == 403
        assert cp.pki.token("restricted") not in repr(restricted)
    finally:
        restricted.stop()
    with pytest.raises(errors.BadRequest):
        client.get("configmaps", None, "dup")


def test_a_webhook_denial_keeps_its_message_and_code():
    denied = api_error(400, {"kind": "Status", "status": "Failure", "code": 400,
                             "message": 'admission webhook "validator.longhorn.io" denied the request: no'})
    assert isinstance(denied, errors.BadRequest) and (denied.code, denied.reason) == (400, "BadRequest")
    assert str(denied) == denied.status()["message"] == 'admission webhook "validator.longhorn.io" denied the request: no'
    invalid = api_error(400, {"kind": "Status", "code": 422, "reason": "Invalid", "message": "bad",
                              "details": {"causes": [{"field": "spec.x", "message": "m", "reason": "FieldValueInvalid"}]}})
    assert isinstance(invalid, errors.Invalid) and invalid.code == 422 and invalid.causes == [("spec.x", "m", "FieldValueInvalid")]
    # The exact class, not a subclass: a 502 without a Status is no known reason.
    assert api_error(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": "x"}).__class__ is errors.AlreadyExists
    assert api_error(502, "<html>bad gateway</html>").__class__ is errors.ApiError


def test_watch_delivers_added_modified_deleted(client, ns):
    _items, rv = client.list("configmaps", ns)
    # Only "w": the root-CA publisher may still be writing kube-root-ca.crt into the new namespace.
    watch = client.watch("configmaps", ns, resource_version=rv, field_selector="metadata.name=w")
    try:
        client.create("configmaps", _cm("w", ns))
        client.patch("configmaps", ns, "w", {"data": {"k": "2"}})
        client.delete("configmaps", ns, "w")
        seen = [watch.next(timeout=10) for _index in range(3)]
        assert [(etype, obj["metadata"]["name"]) for etype, obj in seen] == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
        assert seen[1][1]["data"] == {"k": "2"}
        assert watch.next(timeout=0.2) is None
    finally:
        watch.close()
    expired = client.watch("configmaps", ns, resource_version="1")
    try:
        etype, status = expired.next(timeout=10)
        assert (etype, status["code"], status["reason"]) == ("ERROR", 410, "Expired")
    finally:
        expired.close()


@pytest.fixture
def informed(cp, ns):
    """A client of its own with a configmaps informer, and a queue of this test's events."""
    api = ApiClient.from_kubeconfig(cp.kubeconfig)
    events = queue.Queue()

    def listener(event):
        # kube-root-ca.crt: the controller-manager publishes it into every namespace, whenever.
        if event.obj["metadata"].get("namespace") == ns and event.obj["metadata"]["name"] != "kube-root-ca.crt":
            events.put(event)
            events.threads.add(threading.current_thread().name)

    events.threads = set()
    api.add_listener(listener)
    api.start_informers(["configmaps"])
    assert api.wait_synced(10)
    yield api, events
    api.stop()


def _next_events(events, count):
    return [events.get(timeout=10) for _index in range(count)]


def test_informer_listener_sees_events_with_old(informed, ns, client):
    api, events = informed
    client.create("configmaps", _cm("i", ns))
    client.patch("configmaps", ns, "i", {"data": {"k": "2"}})
    client.delete("configmaps", ns, "i")
    added, modified, deleted = _next_events(events, 3)
    assert (added.type, added.old, added.rtype_key) == ("ADDED", None, ("", "configmaps"))
    assert (modified.type, modified.old["data"], modified.obj["data"]) == ("MODIFIED", {"k": "v"}, {"k": "2"})
    assert (deleted.type, deleted.old["data"]) == ("DELETED", {"k": "2"})
    assert added.rv < modified.rv < deleted.rv and isinstance(added.rv, int)
    assert events.threads == {"informer /configmaps"}
    client.create("configmaps", _cm("j", ns))
    _next_events(events, 1)
    assert [o["metadata"]["name"] for o in api.cached_list("configmaps", ns) if o["metadata"]["name"] != "kube-root-ca.crt"] == ["j"]


def _hold_reconnect(api, monkeypatch):
    """Cut the informer's stream and hold its relist and rewatch until the returned event is set."""
    informer = api._informers[("", "configmaps")]
    release = threading.Event()
    release.lists, release.streams = [], []
    real_stream, real_list = api._stream, api.list

    def held_stream(*args, **kwargs):
        release.wait(10)
        release.streams.append(args)
        return real_stream(*args, **kwargs)

    def held_list(*args, **kwargs):
        release.wait(10)
        release.lists.append(args)
        return real_list(*args, **kwargs)

    monkeypatch.setattr(api, "_stream", held_stream)
    monkeypatch.setattr(api, "list", held_list)
    _until(lambda: informer.response is not None, what="a live informer stream")
    informer._cut()
    return informer, release


def test_informer_recovers_after_the_stream_breaks(informed, ns, client, monkeypatch):
    api, events = informed
    client.create("configmaps", _cm("keep", ns))
    _next_events(events, 1)
    informer, release = _hold_reconnect(api, monkeypatch)
    informer.watch_seconds = 1      # from now on the server ends each watch after a second
    client.patch("configmaps", ns, "keep", {"data": {"k": "meanwhile"}})
    release.set()
    (event,) = _next_events(events, 1)
    assert (event.type, event.obj["data"], event.old["data"]) == ("MODIFIED", {"k": "meanwhile"}, {"k": "v"})
    # A broken stream is relisted; a watch the server ends in time is resumed without a list.
    assert len(release.lists) == 1
    time.sleep(1.5)
    client.patch("configmaps", ns, "keep", {"data": {"k": "later"}})
    (event,) = _next_events(events, 1)
    assert (event.type, event.old["data"], len(release.lists)) == ("MODIFIED", {"k": "meanwhile"}, 1)
    assert len(release.streams) >= 2


def test_informer_relists_on_gone_and_emits_the_differences(informed, ns, client, monkeypatch):
    api, events = informed
    for name in ("stay", "change", "drop"):
        client.create("configmaps", _cm(name, ns))
    _next_events(events, 3)
    informer, release = _hold_reconnect(api, monkeypatch)
    informer.rv = "1"       # too old for the watch cache: the server answers 410 and the informer relists
    client.patch("configmaps", ns, "change", {"data": {"k": "2"}})
    client.delete("configmaps", ns, "drop")
    client.create("configmaps", _cm("new", ns))
    release.set()
    seen = {(e.type, e.obj["metadata"]["name"]) for e in _next_events(events, 3)}
    assert seen == {("MODIFIED", "change"), ("DELETED", "drop"), ("ADDED", "new")}
    assert events.empty()
    _until(lambda: int(informer.rv) > 1, what="the relisted resourceVersion")
    cached = [o["metadata"]["name"] for o in api.cached_list("configmaps", ns) if o["metadata"]["name"] != "kube-root-ca.crt"]
    assert cached == ["change", "new", "stay"]


def test_a_watch_refused_with_429_raises_too_many_requests():
    """The API server answers 429 with Retry-After while its watch cache starts: the caller sees the Status."""
    class _Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            body = json.dumps({"kind": "Status", "code": 429, "reason": "TooManyRequests",
                               "message": "storage is (re)initializing"}).encode()
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = ApiClient("http://127.0.0.1:%d" % server.server_address[1], "token", None)
        holder = type("Holder", (), {"closed": False, "response": None})()
        with pytest.raises(errors.TooManyRequests, match="initializing"):
            list(api._stream("/api/v1/configmaps", {"watch": "true"}, holder))
    finally:
        server.shutdown()
        server.server_close()


def test_informer_waits_out_a_429_and_resumes_without_relisting(informed, ns, client, monkeypatch, caplog):
    api, events = informed
    client.create("configmaps", _cm("steady", ns))
    _next_events(events, 1)
    informer, release = _hold_reconnect(api, monkeypatch)
    held_stream, refused = api._stream, []

    def busy_once(*args, **kwargs):
        if not refused:
            refused.append(len(release.lists))     # lists so far (a cut stream may or may not be relisted)
            raise errors.TooManyRequests("storage is (re)initializing")
        return held_stream(*args, **kwargs)
    monkeypatch.setattr(api, "_stream", busy_once)
    client.patch("configmaps", ns, "steady", {"data": {"k": "after-429"}})
    release.set()
    (event,) = _next_events(events, 1)
    assert (event.type, event.obj["data"]) == ("MODIFIED", {"k": "after-429"})
    # The 429 resumed the watch from the same resourceVersion: no list after it, nothing logged as a failure.
    assert len(refused) == 1 and len(release.lists) == refused[0]
    assert not [r for r in caplog.records if "initializing" in r.getMessage()]
