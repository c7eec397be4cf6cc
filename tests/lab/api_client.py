# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Kubernetes client: what controllers and tests call the store, over HTTPS.

``get``/``list``/``create``/``modify``/``delete`` on plain dicts, errors raised as the lab's
``api_errors`` classes (built from the server's ``Status``), and informers that feed
``add_listener`` callbacks from list+watch.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import queue
import random
import threading
import time
import urllib.parse
import weakref
from dataclasses import dataclass

import urllib3

from . import api_errors as errors

LOG = logging.getLogger("lab.api_client")
_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    # JSON is YAML, so an apply body needs no YAML encoder.
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple = ()
    subresources: tuple = ()
    verbs: tuple = ()

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def has_status(self):
        return "status" in self.subresources

    def singular_name(self):
        return self.singular or self.kind.lower()


@dataclass
class Event:
    """What a listener gets; the fields of ``store.Event``."""

    rv: int
    rtype_key: tuple
    type: str               # ADDED | MODIFIED | DELETED
    obj: dict
    old: dict | None


# ---- errors -------------------------------------------------------------------
_CLASSES = (errors.BadRequest, errors.Forbidden, errors.NotFound, errors.MethodNotAllowed, errors.AlreadyExists, errors.Conflict,
            errors.Gone, errors.UnsupportedMediaType, errors.Invalid, errors.TooManyRequests, errors.InternalError,
            errors.ServiceUnavailable, errors.Timeout)
_BY_REASON = {cls.reason: cls for cls in _CLASSES} | {"Gone": errors.Gone, "ServerTimeout": errors.Timeout}
_BY_CODE = {cls.code: cls for cls in _CLASSES}      # 409 is Conflict: AlreadyExists comes by its reason


def api_error(code, body):
    """The ``errors`` subclass for a failed response, carrying the server's message, code, reason and details.

    The reason wins over the code (a webhook may deny with any code); unknown ones are a plain ApiError.
    The subclasses' own constructors build messages of their own, so they are bypassed.
    """
    if not isinstance(body, dict) or body.get("kind") != "Status":
        text = body if isinstance(body, str) and body else "the server answered HTTP %d" % code
        body = {"message": text}
    code = body.get("code") or code
    reason = body.get("reason") or ""
    details = body.get("details") or {}
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or errors.ApiError
    exc = cls.__new__(cls)
    errors.ApiError.__init__(exc, body.get("message") or reason or "HTTP %d" % code, code=code, reason=reason or cls.reason, details=details)
    if isinstance(exc, errors.Invalid):
        exc.causes = [(c.get("field", ""), c.get("message", ""), c.get("reason", "")) for c in details.get("causes") or []]
    return exc


def _decode(raw):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


# ---- discovery ----------------------------------------------------------------
class Registry:
    """Resource types from API discovery, cached and refreshed when a lookup misses.

    Each group is read at its preferred version.  ``by_plural`` with ``group=None`` prefers the
    core group, then groups in the order ``/apis`` lists them (the server's priority order).
    """

    def __init__(self, client):
        self._client = client
        self._lock = threading.Lock()
        self._types = None          # list in discovery order
        self._generation = 0

    def refresh(self):
        generation = self._generation
        with self._lock:
            if self._generation != generation and self._types is not None:
                return      # another thread refreshed while this one waited
            types = self._discover("/api/v1", "", "v1")
            for group in self._client.request("GET", "/apis").get("groups", []):
                preferred = group.get("preferredVersion") or group["versions"][0]
                types += self._discover("/apis/" + preferred["groupVersion"], group["name"], preferred["version"])
            self._types = types
            self._generation += 1

    def _discover(self, path, group, version):
        try:
            resources = self._client.request("GET", path).get("resources", [])
        except (errors.NotFound, errors.ServiceUnavailable):
            return []       # a group going away (CRD deleted) or an aggregated API that is down
        subresources = {}
        for res in resources:
            parent, _sep, sub = res["name"].partition("/")
            if sub:
                subresources.setdefault(parent, []).append(sub)
        return [ResourceType(group, version, res["kind"], res["name"], res["namespaced"], res.get("singularName", ""),
                             tuple(res.get("shortNames", ())), tuple(sorted(subresources.get(res["name"], ()))),
                             tuple(res.get("verbs", ())))
                for res in resources if "/" not in res["name"]]

    def _lookup(self, match):
        """The first match; a miss rediscovers once (a CRD may have been installed since)."""
        fresh = self._types is None
        if fresh:
            self.refresh()
        found = next((t for t in self._types if match(t)), None)
        if found is None and not fresh:
            self.refresh()
            found = next((t for t in self._types if match(t)), None)
        return found

    def by_plural(self, plural, group=None):
        """Also accepts the singular, the lower-case kind and short names, as kubectl does."""
        def match(t):
            return (group is None or t.group == group) and (plural in (t.plural, t.singular_name(), t.kind.lower()) or plural in t.short_names)
        return self._lookup(match)

    def by_kind(self, api_version, kind):
        group, _sep, version = api_version.rpartition("/")
        return self._lookup(lambda t: t.group == group and t.version == version and t.kind == kind)

    def all(self):
        if self._types is None:
            self.refresh()
        return list(self._types)


# ---- the client ---------------------------------------------------------------
class ApiClient:
    def __init__(self, server, token, ca_file, *, timeout=30, ca_data=None, page_size=500, user_agent="longhorn-dr-lab"):
        self.server = server.rstrip("/")
        self._token = token
        self.timeout = timeout
        # The API server names a writer's field manager after its User-Agent (the part before "/").
        self.user_agent = user_agent
        self.page_size = page_size
        # Connection and idempotent-read retries only: a replayed POST could create twice.
        retries = urllib3.Retry(total=3, connect=3, read=1, status=0, redirect=0)
        self._http = urllib3.PoolManager(maxsize=64, cert_reqs="CERT_REQUIRED", ca_certs=ca_file, ca_cert_data=ca_data, retries=retries)
        self.registry = Registry(self)
        self._listeners = []
        self._informers = {}
        self._watches = weakref.WeakSet()
        self._lock = threading.Lock()
        self.stopped = False        # read by deferred work that may fire after the lab is gone

    def __repr__(self):
        return "ApiClient(%r)" % self.server     # never the token

    @classmethod
    def from_kubeconfig(cls, path, **kwargs):
        import yaml     # the lab's venv has PyYAML (ansible-core needs it)
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name) if context_name else config["contexts"][0]["context"]
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        base = os.path.dirname(os.path.abspath(path))      # relative paths in a kubeconfig are relative to it
        token = user.get("token")
        if token is None and user.get("tokenFile"):
            with open(os.path.join(base, user["tokenFile"]), encoding="utf-8") as handle:
                token = handle.read().strip()
        ca_file = os.path.join(base, cluster["certificate-authority"]) if cluster.get("certificate-authority") else None
        ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode() if cluster.get("certificate-authority-data") else None
        return cls(cluster["server"], token, ca_file, ca_data=ca_data, **kwargs)

    # ---- transport ------------------------------------------------------------
    def _url(self, path, query):
        query = {k: v for k, v in (query or {}).items() if v is not None}
        return self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _headers(self, content_type=None):
        # The user agent names the field manager of this client's writes.
        headers = {"Authorization": "Bearer " + self._token, "Accept": "application/json", "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method, path, *, query=None, body=None, content_type="application/json"):
        """One request; returns the decoded JSON body or raises the ``errors`` class of the Status."""
        data = json.dumps(body).encode() if body is not None else None
        resp = self._http.request(method, self._url(path, query), body=data, headers=self._headers(content_type if data else None),
                                  timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout))
        payload = _decode(resp.data)
        if resp.status >= 400:
            raise api_error(resp.status, payload)
        return payload

    def _stream(self, path, query, holder, read_timeout=None):
        """Yield ``(type, object)`` from a watch; ``holder.response`` lets another thread cut the stream."""
        # A 429 (the API server's watch cache still starting) comes back as TooManyRequests, not as a retry error.
        resp = self._http.request("GET", self._url(path, query), headers=self._headers(), preload_content=False,
                                  timeout=urllib3.Timeout(connect=self.timeout, read=read_timeout),
                                  retries=urllib3.Retry(total=3, connect=3, read=0, status=0, redirect=0, respect_retry_after_header=False))
        holder.response = resp
        try:
            if holder.closed:
                return      # closed before the response existed to be cut
            if resp.status >= 400:
                raise api_error(resp.status, _decode(resp.read()))
            buffer = b""
            for chunk in resp.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]
        finally:
            holder.response = None
            resp.release_conn()

    # ---- paths ----------------------------------------------------------------
    def _resolve(self, rtype):
        if isinstance(rtype, ResourceType):
            return rtype
        group, plural = rtype if isinstance(rtype, tuple) else (None, rtype)
        resolved = self.registry.by_plural(plural, group)
        if resolved is None:
            raise errors.NotFound("resources", plural, group or "")
        return resolved

    def _path(self, rtype, namespace=None, name=None, subresource=None, require_ns=True):
        path = "/apis/%s/%s" % (rtype.group, rtype.version) if rtype.group else "/api/" + rtype.version
        if rtype.namespaced and namespace:
            path += "/namespaces/" + urllib.parse.quote(namespace, safe="")
        elif rtype.namespaced and require_ns:
            raise errors.BadRequest("namespace is required")
        path += "/" + rtype.plural
        if name is not None:
            path += "/" + urllib.parse.quote(name, safe="")
        return path + ("/" + subresource if subresource else "")

    @staticmethod
    def _typed(rtype, obj):
        # List items come without apiVersion/kind; callers expect every object to carry them.
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        return obj

    # ---- reads ----------------------------------------------------------------
    def get(self, rtype, namespace, name):
        rtype = self._resolve(rtype)
        return self.request("GET", self._path(rtype, namespace, name))

    def try_get(self, rtype, namespace, name):
        try:
            return self.get(rtype, namespace, name)
        except errors.NotFound:
            return None

    def list(self, rtype, namespace=None, label_selector=None, field_selector=None, *, page_size=None):
        """Return ``(items, resourceVersion)``, following ``continue`` until the list is complete."""
        rtype = self._resolve(rtype)
        query = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": page_size or self.page_size}
        items = []
        while True:
            page = self.request("GET", self._path(rtype, namespace, require_ns=False), query=query)
            items.extend(self._typed(rtype, item) for item in page.get("items") or [])
            token = page["metadata"].get("continue")
            if not token:
                # A few built-in lists (componentstatuses) carry no resourceVersion.
                return items, (page.get("metadata") or {}).get("resourceVersion", "")
            query["continue"] = token

    # ---- writes ---------------------------------------------------------------
    def create(self, rtype, obj, *, namespace=None, dry_run=False, user="lab"):
        """``user`` (the writer callers would be on Kubernetes) is ignored: the token decides who writes."""
        rtype = self._resolve(rtype)
        body = self._typed(rtype, copy.deepcopy(obj))
        namespace = namespace or body.get("metadata", {}).get("namespace")
        if rtype.namespaced and not namespace:
            raise errors.BadRequest("the namespace of the provided object is empty")
        return self.request("POST", self._path(rtype, namespace), query={"dryRun": "All" if dry_run else None}, body=body)

    def update(self, rtype, obj, *, namespace=None, name=None, subresource=None, dry_run=False, user="lab"):
        """PUT; the server checks ``metadata.resourceVersion`` when the object carries one."""
        rtype = self._resolve(rtype)
        body = self._typed(rtype, copy.deepcopy(obj))
        meta = body.setdefault("metadata", {})
        name = name or meta.get("name")
        meta.setdefault("name", name)
        path = self._path(rtype, namespace or meta.get("namespace"), name, subresource)
        return self.request("PUT", path, query={"dryRun": "All" if dry_run else None}, body=body)

    def modify(self, rtype, namespace, name, mutate, *, subresource=None, dry_run=False, user="lab", attempts=10):
        """GET, ``mutate(copy)`` (returns the new object or None for in place), PUT; re-read and retry on 409.

        ``mutate`` may run several times.  A resourceVersion set by ``mutate`` itself is the caller's
        own precondition: a mismatch raises Conflict at once.
        """
        rtype = self._resolve(rtype)
        for attempt in range(attempts):
            current = self.get(rtype, namespace, name)
            candidate = copy.deepcopy(current)
            result = mutate(candidate)
            candidate = candidate if result is None else result
            read_rv = current["metadata"]["resourceVersion"]
            if (candidate.get("metadata", {}).get("resourceVersion") or read_rv) != read_rv:
                raise errors.Conflict(rtype.plural, name, rtype.group)
            if candidate == current:
                return candidate        # nothing to write (the server would not bump resourceVersion either)
            candidate.setdefault("metadata", {})["resourceVersion"] = read_rv
            try:
                return self.update(rtype, candidate, namespace=namespace, name=name, subresource=subresource, dry_run=dry_run)
            except errors.Conflict:
                if attempt == attempts - 1:
                    raise
                time.sleep(min(0.5, 0.01 * 2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def patch(self, rtype, namespace, name, body, patch_type="merge", *, subresource=None, field_manager=None, force=False, dry_run=False):
        rtype = self._resolve(rtype)
        query = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager, "force": "true" if force else None}
        return self.request("PATCH", self._path(rtype, namespace, name, subresource), query=query, body=body,
                            content_type=_PATCH_TYPES[patch_type])

    def delete(self, rtype, namespace, name, *, dry_run=False, preconditions=None, propagation="Background", user="lab"):
        """Returns the object: as the server answers when it answers one (with deletionTimestamp while
        finalizers hold it), else (a Status) the copy read just before the DELETE."""
        rtype = self._resolve(rtype)
        before = self.get(rtype, namespace, name)
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if preconditions:
            options["preconditions"] = preconditions
        if dry_run:
            options["dryRun"] = ["All"]
        answer = self.request("DELETE", self._path(rtype, namespace, name), body=options)
        if isinstance(answer, dict) and answer.get("kind") == rtype.kind:
            return answer
        return before

    # ---- watch ----------------------------------------------------------------
    def watch(self, rtype, namespace=None, resource_version=None, label_selector=None, field_selector=None):
        """A ``Watch`` (``next(timeout)``, ``close()``) read by a background thread."""
        rtype = self._resolve(rtype)
        query = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector, "fieldSelector": field_selector}
        watch = Watch(self, self._path(rtype, namespace, require_ns=False), query)
        with self._lock:
            self._watches.add(watch)
        return watch

    # ---- informers ------------------------------------------------------------
    def add_listener(self, callback):
        """``callback(event)`` runs on an informer thread for each change of an informed type: keep it cheap."""
        self._listeners.append(callback)

    def start_informers(self, rtypes):
        for rtype in rtypes:
            rtype = self._resolve(rtype)
            with self._lock:
                if rtype.key not in self._informers:
                    self._informers[rtype.key] = _Informer(self, rtype)
                    self._informers[rtype.key].start()

    def wait_synced(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        for informer in list(self._informers.values()):
            if not informer.synced.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
                return False
        return True

    def cached_list(self, rtype, namespace=None):
        """The informer cache of ``rtype`` (started by ``start_informers``), sorted by namespace/name."""
        informer = self._informers[self._resolve(rtype).key]
        with informer.lock:
            return [copy.deepcopy(obj) for (ns, _name), obj in sorted(informer.cache.items()) if not namespace or ns == namespace]

    def object_counts(self):
        """``{"<group>/<plural>" or "<plural>": count}`` of every listable type that has objects."""
        counts = {}
        for rtype in self.registry.all():
            if "list" not in rtype.verbs:
                continue
            try:
                items = self.list(rtype)[0]
            except errors.ApiError:
                continue
            if items:
                counts["%s/%s" % rtype.key if rtype.group else rtype.plural] = len(items)
        return counts

    def stop(self):
        self.stopped = True
        with self._lock:
            informers, self._informers = list(self._informers.values()), {}
            watches, self._watches = list(self._watches), weakref.WeakSet()
        for informer in informers:
            informer.stop()
        for watch in watches:
            watch.close()
        for informer in informers:
            informer.join(5)
        self._http.clear()

    def _emit(self, event):
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # pylint: disable=broad-except
                LOG.exception("listener %r failed on %s %s", listener, event.type, event.rtype_key)


class _Cuttable:
    """Holds the live response of a stream so that another thread can shut its socket."""

    response = None
    closed = False

    def _cut(self):
        resp = self.response
        if resp is not None:
            try:
                resp.shutdown()     # unblocks the reading thread
            except Exception:  # pylint: disable=broad-except
                pass


_END = object()


class Watch(_Cuttable):
    """``next(timeout)`` returns ``(type, object)``, or None on timeout and once the stream has ended."""

    def __init__(self, client, path, query):
        self._client = client
        self._queue = queue.Queue()
        self.closed = False
        self._thread = threading.Thread(target=self._run, args=(path, query), name="watch " + path, daemon=True)
        self._thread.start()

    def _run(self, path, query):
        try:
            for item in self._client._stream(path, query, self):
                self._queue.put(item)
                if self.closed:
                    break
        except errors.ApiError as exc:
            self._queue.put(("ERROR", exc.status()))
        except Exception as exc:  # pylint: disable=broad-except
            if not self.closed:
                LOG.debug("watch stream ended: %s", exc)
        self._queue.put(_END)

    def next(self, timeout=None):
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self.closed = True
            self._queue.put(_END)       # every later call ends at once too
            return None
        return item

    def close(self):
        self.closed = True
        self._cut()


class _Informer(threading.Thread, _Cuttable):
    """List, then watch from the list's resourceVersion; relist (emitting the differences) on 410 or errors."""

    def __init__(self, client, rtype, watch_seconds=300):
        threading.Thread.__init__(self, name="informer %s/%s" % rtype.key, daemon=True)
        self.client = client
        self.rtype = rtype
        self.watch_seconds = watch_seconds
        self.cache = {}                 # (namespace, name) -> object
        self.lock = threading.Lock()
        self.rv = None
        self.relist = True
        self.synced = threading.Event()
        self._stopped = threading.Event()

    @property
    def closed(self):
        return self._stopped.is_set()

    def stop(self):
        self._stopped.set()
        self._cut()

    def run(self):
        failures = 0
        while not self._stopped.is_set():
            try:
                if self.relist:
                    self._list()
                self._watch()
                failures = 0
            except errors.Gone:
                self.relist = True
            except errors.TooManyRequests:
                # The watch may resume from the same resourceVersion once the watch cache is ready.
                self._stopped.wait(0.2)
            except Exception as exc:  # pylint: disable=broad-except
                if self._stopped.is_set():
                    return
                failures += 1
                self.relist = True
                LOG.warning("informer %s/%s: %s; relisting", self.rtype.group, self.rtype.plural, exc)
                self._stopped.wait(min(5.0, 0.1 * 2 ** failures))

    @staticmethod
    def _key(obj):
        return (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def _apply(self, etype, obj, rv):
        key = self._key(obj)
        with self.lock:
            old = self.cache.get(key)
            if etype == "DELETED":
                self.cache.pop(key, None)
            else:
                self.cache[key] = obj
        if etype == "ADDED" and old is not None:
            etype = "MODIFIED"      # a resumed watch may replay an ADDED the cache already holds
        self.client._emit(Event(int(rv), self.rtype.key, etype, obj, old))

    def _list(self):
        items, rv = self.client.list(self.rtype)
        fresh = {self._key(obj): obj for obj in items}
        with self.lock:
            gone = [obj for key, obj in self.cache.items() if key not in fresh]
            known = {key: obj["metadata"]["resourceVersion"] for key, obj in self.cache.items()}
        for obj in gone:
            self._apply("DELETED", obj, rv)
        for key, obj in fresh.items():
            if known.get(key) != obj["metadata"]["resourceVersion"]:
                self._apply("ADDED", obj, obj["metadata"]["resourceVersion"])
        self.rv, self.relist = rv, False
        self.synced.set()

    def _watch(self):
        query = {"watch": "true", "resourceVersion": self.rv, "allowWatchBookmarks": "true", "timeoutSeconds": self.watch_seconds}
        path = self.client._path(self.rtype, require_ns=False)
        for etype, obj in self.client._stream(path, query, self, read_timeout=self.watch_seconds + 30):
            if self._stopped.is_set():
                return
            if etype == "ERROR":
                raise api_error(obj.get("code") or 500, obj)
            self.rv = obj["metadata"]["resourceVersion"]
            if etype != "BOOKMARK":
                self._apply(etype, self.client._typed(self.rtype, obj), self.rv)
