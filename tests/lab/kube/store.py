# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stateful, thread-safe Kubernetes object store.

It implements the API machinery the collection depends on: resourceVersion and
409 conflicts, uid/creationTimestamp/generation, status subresources, finalizers
and deletionTimestamp, owner-reference garbage collection, namespace deletion,
dry run, admission plugins and watch events.  The HTTP layer (server.py) and the
in-process controllers both go through it.
"""

from __future__ import annotations

import collections
import copy
import datetime
import queue
import random
import re
import string
import threading
import uuid
from dataclasses import dataclass

from ..admission import AdmissionRequest
from .. import api_errors as errors
from .selectors import match_fields, match_labels, parse_field_selector, parse_label_selector

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names must be DNS labels (63 chars) rather than DNS subdomains.
_LABEL_NAMED = {("", "namespaces"), ("", "services")}
EVENT_HISTORY = 20000


def _without_rv(obj):
    stripped = dict(obj)
    stripped["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return stripped


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    rtype_key: tuple
    type: str               # ADDED | MODIFIED | DELETED
    obj: dict
    old: dict | None


class Watch:
    """A live watch: ``next(timeout)`` returns ``(type, object)`` or None on timeout."""

    def __init__(self, store, rtype, namespace, label_req, field_req):
        self._store = store
        self.rtype = rtype
        self.namespace = namespace
        self._labels = label_req
        self._fields = field_req
        self._queue = queue.Queue()
        self.closed = False

    def _matches(self, obj):
        if obj is None:
            return False
        if self.namespace and obj.get("metadata", {}).get("namespace") != self.namespace:
            return False
        return match_labels(self._labels, obj.get("metadata", {}).get("labels")) and match_fields(self._fields, obj)

    def offer(self, event):
        """Translate a store event into what this watcher sees (selector transitions become ADDED/DELETED)."""
        if event.rtype_key != self.rtype.key:
            return
        new_match = event.type != "DELETED" and self._matches(event.obj)
        old_match = self._matches(event.old) if event.type != "ADDED" else False
        if event.type == "DELETED":
            if self._matches(event.obj):
                self._queue.put(("DELETED", event.obj))
        elif new_match and old_match:
            self._queue.put(("MODIFIED", event.obj))
        elif new_match:
            self._queue.put(("ADDED", event.obj))
        elif old_match:
            self._queue.put(("DELETED", event.obj))

    def put_error(self, status):
        self._queue.put(("ERROR", status))

    def next(self, timeout=None):
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.closed = True
        self._store.remove_watch(self)


class Store:
    def __init__(self, registry):
        self.registry = registry
        self._lock = threading.RLock()
        self._objects = collections.defaultdict(dict)   # rtype.key -> {(ns, name): obj}
        self._rv = 1
        self._history = collections.deque(maxlen=EVENT_HISTORY)
        self._watches = []
        self._listeners = []
        self._mutators = []
        self._validators = []
        # Per-kind hooks: initial status on create, e.g. PVC phase Pending.
        self.initial_status = {}
        self.changed = threading.Condition(self._lock)

    # ---- extension points -------------------------------------------------
    def add_listener(self, callback):
        """``callback(event)`` runs under the store lock after each committed change: keep it tiny (enqueue)."""
        self._listeners.append(callback)

    def add_mutator(self, callback):
        """``callback(request)`` may change ``request.obj`` in place or raise an ApiError."""
        self._mutators.append(callback)

    def add_validator(self, callback):
        """``callback(request)`` raises an ApiError to refuse."""
        self._validators.append(callback)

    # ---- helpers ----------------------------------------------------------
    @property
    def resource_version(self):
        with self._lock:
            return str(self._rv)

    def _next_rv(self):
        self._rv += 1
        return self._rv

    def _resolve(self, rtype):
        if isinstance(rtype, str):
            resolved = self.registry.by_plural(rtype)
            if resolved is None:
                raise errors.NotFound("resources", rtype)
            return resolved
        return rtype

    def _ns(self, rtype, namespace, obj=None):
        if not rtype.namespaced:
            return ""
        namespace = namespace or (obj or {}).get("metadata", {}).get("namespace")
        if not namespace:
            raise errors.BadRequest("the namespace of the provided object is empty" if obj is not None else "namespace is required")
        return namespace

    def _admit(self, request):
        for mutate in self._mutators:
            mutate(request)
        for validate in self._validators:
            validate(request)

    def _validate_name(self, rtype, name):
        if rtype.key in _LABEL_NAMED:
            pattern, limit, what, chars = _DNS_LABEL, 63, "label", "'-'"
        else:
            pattern, limit, what, chars = _DNS_SUBDOMAIN, 253, "subdomain", "'-' or '.'"
        if not name or len(name) > limit or not pattern.match(name):
            raise errors.Invalid(rtype.kind, name, [(
                "metadata.name", 'Invalid value: "%s": a lowercase RFC 1123 %s must consist of lower case alphanumeric '
                "characters, %s, and must start and end with an alphanumeric character" % (name, what, chars),
                "FieldValueInvalid")], group=rtype.group)

    def _commit(self, rtype, etype, obj, old):
        event = Event(int(obj["metadata"]["resourceVersion"]), rtype.key, etype, copy.deepcopy(obj), copy.deepcopy(old))
        self._history.append(event)
        for watch in list(self._watches):
            watch.offer(event)
        for listener in list(self._listeners):
            listener(event)
        self.changed.notify_all()

    @staticmethod
    def _spec_part(obj):
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    # ---- reads ------------------------------------------------------------
    def get(self, rtype, namespace, name):
        rtype = self._resolve(rtype)
        with self._lock:
            obj = self._objects[rtype.key].get((self._ns(rtype, namespace) if rtype.namespaced else "", name))
            if obj is None:
                raise errors.NotFound(rtype.plural, name, rtype.group)
            return copy.deepcopy(obj)

    def try_get(self, rtype, namespace, name):
        try:
            return self.get(rtype, namespace, name)
        except errors.NotFound:
            return None

    def list(self, rtype, namespace=None, label_selector=None, field_selector=None):
        """Return ``(items, resourceVersion)`` sorted by namespace/name, as the API server lists."""
        rtype = self._resolve(rtype)
        label_req = parse_label_selector(label_selector) if isinstance(label_selector, str) else (label_selector or [])
        field_req = parse_field_selector(field_selector) if isinstance(field_selector, str) else (field_selector or [])
        with self._lock:
            items = []
            for (ns, _name), obj in sorted(self._objects[rtype.key].items()):
                if namespace and rtype.namespaced and ns != namespace:
                    continue
                if match_labels(label_req, obj["metadata"].get("labels")) and match_fields(field_req, obj):
                    items.append(copy.deepcopy(obj))
            return items, str(self._rv)

    # ---- writes -----------------------------------------------------------
    def create(self, rtype, obj, *, namespace=None, dry_run=False, user="lab"):
        rtype = self._resolve(rtype)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        with self._lock:
            ns = self._ns(rtype, namespace, obj)
            if rtype.namespaced:
                if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                    raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
                namespace_obj = self._objects[("", "namespaces")].get(("", ns))
                if namespace_obj is None:
                    raise errors.NotFound("namespaces", ns)
                if namespace_obj["metadata"].get("deletionTimestamp"):
                    raise errors.Forbidden('%s "%s" is forbidden: unable to create new content in namespace %s because it is being terminated'
                                           % (rtype.plural, meta.get("name", ""), ns))
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _position in range(5))
                meta["name"] = meta["generateName"] + suffix
            name = meta.get("name", "")
            if not name:
                raise errors.Invalid(rtype.kind, "", [("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")],
                                     group=rtype.group)
            if meta.get("resourceVersion"):
                raise errors.BadRequest("resourceVersion should not be set on objects to be created")
            obj["apiVersion"] = rtype.api_version
            obj["kind"] = rtype.kind
            if rtype.has_status:
                # A CR's status is dropped on create; built-ins start from their initial status.
                obj.pop("status", None)
                initial = self.initial_status.get(rtype.key)
                if initial is not None:
                    obj["status"] = copy.deepcopy(initial)
            request = AdmissionRequest("CREATE", rtype, obj, None, None, dry_run, user)
            self._admit(request)
            obj = request.obj
            meta = obj["metadata"]
            self._validate_name(rtype, meta.get("name", ""))
            if (ns, meta["name"]) in self._objects[rtype.key]:
                raise errors.AlreadyExists(rtype.plural, meta["name"], rtype.group)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            meta.pop("deletionTimestamp", None)
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return copy.deepcopy(obj)
            meta["resourceVersion"] = str(self._next_rv())
            self._objects[rtype.key][(ns, meta["name"])] = obj
            if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self.registry.register_crd(obj)
            self._commit(rtype, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def update(self, rtype, obj, *, namespace=None, name=None, subresource=None, dry_run=False, user="lab"):
        """PUT semantics: optimistic concurrency on ``metadata.resourceVersion`` when it is given."""
        rtype = self._resolve(rtype)
        obj = copy.deepcopy(obj)
        with self._lock:
            ns = self._ns(rtype, namespace, obj)
            name = name or obj.get("metadata", {}).get("name")
            current = self._objects[rtype.key].get((ns, name))
            if current is None:
                raise errors.NotFound(rtype.plural, name, rtype.group)
            given_rv = obj.get("metadata", {}).get("resourceVersion")
            if given_rv and given_rv != current["metadata"]["resourceVersion"]:
                raise errors.Conflict(rtype.plural, name, rtype.group)
            if obj.get("metadata", {}).get("name") not in (None, name):
                raise errors.BadRequest("the name of the object (%s) does not match the name on the URL (%s)" % (obj["metadata"]["name"], name))
            return self._apply_update(rtype, current, obj, subresource, dry_run, user)

    def modify(self, rtype, namespace, name, mutate, *, subresource=None, dry_run=False, user="lab"):
        """Read-modify-write under the lock: ``mutate(copy_of_current)`` returns the new object (or None for in place).

        This is how PATCH is applied (the patch is computed against the current object) and
        how controllers change status without conflicts.
        """
        rtype = self._resolve(rtype)
        with self._lock:
            ns = self._ns(rtype, namespace)
            current = self._objects[rtype.key].get((ns, name))
            if current is None:
                raise errors.NotFound(rtype.plural, name, rtype.group)
            candidate = copy.deepcopy(current)
            result = mutate(candidate)
            candidate = candidate if result is None else result
            given_rv = candidate.get("metadata", {}).get("resourceVersion")
            if given_rv and given_rv != current["metadata"]["resourceVersion"]:
                raise errors.Conflict(rtype.plural, name, rtype.group)
            return self._apply_update(rtype, current, candidate, subresource, dry_run, user)

    def _apply_update(self, rtype, current, obj, subresource, dry_run, user):
        meta = obj.setdefault("metadata", {})
        cur_meta = current["metadata"]
        # Immutable and server-owned metadata.
        for key in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"):
            if key in cur_meta:
                meta[key] = cur_meta[key]
            else:
                meta.pop(key, None)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        if subresource == "status":
            # Only status changes; everything else comes from the stored object.
            new = copy.deepcopy(current)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            obj = new
        elif subresource not in (None, "scale"):
            raise errors.MethodNotAllowed("subresource %s does not support update" % subresource)
        elif rtype.has_status:
            if "status" in current:
                obj["status"] = copy.deepcopy(current["status"])
            else:
                obj.pop("status", None)
        if cur_meta.get("deletionTimestamp"):
            added = set(obj["metadata"].get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
            if added:
                raise errors.Forbidden("no new finalizers can be added if the object is being deleted, found new finalizers %s" % sorted(added))
        request = AdmissionRequest("UPDATE", rtype, obj, copy.deepcopy(current), subresource, dry_run, user)
        self._admit(request)
        obj = request.obj
        if self._spec_part(obj) != self._spec_part(current):
            obj["metadata"]["generation"] = cur_meta.get("generation", 1) + 1
        if _without_rv(obj) == _without_rv(current):
            # A no-op write does not bump resourceVersion, like the real API server.
            obj["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
            return copy.deepcopy(obj)
        if dry_run:
            obj["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
            return copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            self._objects[rtype.key][key] = obj
            self._remove(rtype, key)
            return copy.deepcopy(obj)
        self._objects[rtype.key][key] = obj
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions") and subresource != "status":
            # An updated CRD (new version, changed schema or printer columns) is served as updated.
            self.registry.register_crd(obj)
        self._commit(rtype, "MODIFIED", obj, current)
        return copy.deepcopy(obj)

    def delete(self, rtype, namespace, name, *, dry_run=False, preconditions=None, propagation="Background", user="lab"):
        """Returns the object as the API does: with deletionTimestamp if finalizers hold it, else its last state."""
        rtype = self._resolve(rtype)
        with self._lock:
            ns = self._ns(rtype, namespace)
            current = self._objects[rtype.key].get((ns, name))
            if current is None:
                raise errors.NotFound(rtype.plural, name, rtype.group)
            preconditions = preconditions or {}
            if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
                raise errors.Conflict(rtype.plural, name, rtype.group,
                                      why="Precondition failed: UID in precondition: %s, UID in object meta: %s" % (
                                          preconditions["uid"], current["metadata"]["uid"]))
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise errors.Conflict(rtype.plural, name, rtype.group)
            request = AdmissionRequest("DELETE", rtype, None, copy.deepcopy(current), None, dry_run, user)
            self._admit(request)
            if dry_run:
                return copy.deepcopy(current)
            if current["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(current)
            is_namespace = rtype.key == ("", "namespaces")
            if propagation == "Orphan":
                self._orphan_dependents(current["metadata"]["uid"])
            elif propagation == "Foreground":
                # Dependents go first; the owner follows once nothing holds it.
                self._collect_dependents(current["metadata"]["uid"])
            if current["metadata"].get("finalizers") or is_namespace:
                obj = copy.deepcopy(current)
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if is_namespace:
                    obj.setdefault("status", {})["phase"] = "Terminating"
                obj["metadata"]["resourceVersion"] = str(self._next_rv())
                self._objects[rtype.key][(ns, name)] = obj
                self._commit(rtype, "MODIFIED", obj, current)
                if is_namespace:
                    self._empty_namespace(name)
                return copy.deepcopy(obj)
            self._remove(rtype, (ns, name))
            return copy.deepcopy(current)

    def _remove(self, rtype, key):
        obj = self._objects[rtype.key].pop(key)
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        self._commit(rtype, "DELETED", obj, obj)
        if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.registry.unregister_crd(obj)
        self._collect_dependents(obj["metadata"]["uid"])
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self._finish_namespace_if_empty(namespace)

    def _collect_dependents(self, owner_uid):
        """Background garbage collection of objects owned by a removed object."""
        for rtype in self.registry.all():
            for (ns, name), obj in list(self._objects[rtype.key].items()):
                owners = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in owners) and not obj["metadata"].get("deletionTimestamp"):
                    self.delete(rtype, ns, name, user="garbage-collector")

    def _orphan_dependents(self, owner_uid):
        for rtype in self.registry.all():
            for key, obj in list(self._objects[rtype.key].items()):
                owners = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in owners):
                    updated = copy.deepcopy(obj)
                    updated["metadata"]["ownerReferences"] = [ref for ref in owners if ref.get("uid") != owner_uid]
                    updated["metadata"]["resourceVersion"] = str(self._next_rv())
                    self._objects[rtype.key][key] = updated
                    self._commit(rtype, "MODIFIED", updated, obj)

    def _empty_namespace(self, namespace):
        for rtype in self.registry.all():
            if not rtype.namespaced:
                continue
            for (ns, name) in [k for k in self._objects[rtype.key] if k[0] == namespace]:
                obj = self._objects[rtype.key].get((ns, name))
                if obj is not None and not obj["metadata"].get("deletionTimestamp"):
                    self.delete(rtype, ns, name, user="namespace-controller")
        self._finish_namespace_if_empty(namespace)

    def _finish_namespace_if_empty(self, namespace):
        ns_obj = self._objects[("", "namespaces")].get(("", namespace))
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        for rtype in self.registry.all():
            if rtype.namespaced and any(k[0] == namespace for k in self._objects[rtype.key]):
                return
        self._remove(self._resolve("namespaces"), ("", namespace))

    # ---- watch ------------------------------------------------------------
    def watch(self, rtype, namespace=None, resource_version=None, label_selector=None, field_selector=None):
        rtype = self._resolve(rtype)
        label_req = parse_label_selector(label_selector) if isinstance(label_selector, str) else (label_selector or [])
        field_req = parse_field_selector(field_selector) if isinstance(field_selector, str) else (field_selector or [])
        watch = Watch(self, rtype, namespace, label_req, field_req)
        with self._lock:
            if resource_version in (None, "", "0"):
                # "Get state and start at most recent": synthetic ADDED for what exists.
                for (ns, _name), obj in sorted(self._objects[rtype.key].items()):
                    if (not namespace or ns == namespace) and watch._matches(obj):
                        watch._queue.put(("ADDED", copy.deepcopy(obj)))
            else:
                start = int(resource_version)
                oldest = self._history[0].rv if self._history else self._rv
                if start < oldest - 1 and start < self._rv:
                    watch.put_error(errors.Gone("too old resource version: %s (%s)" % (start, oldest)).status())
                    return watch
                for event in self._history:
                    if event.rv > start:
                        watch.offer(event)
            self._watches.append(watch)
        return watch

    def remove_watch(self, watch):
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    # ---- lab maintenance --------------------------------------------------
    def wipe(self, keep=lambda rtype: False):
        """Forget every object (no finalizers, no events to controllers): the cluster is gone."""
        with self._lock:
            for rtype in self.registry.all():
                if not keep(rtype):
                    self._objects[rtype.key].clear()
            for watch in list(self._watches):
                watch.put_error(errors.Gone("the lab cluster was wiped").status())
            self._history.clear()
            self._rv += 1000
            for rtype in [r for r in self.registry.all() if r.is_crd]:
                self.registry.unregister_group_plural(rtype.group, rtype.plural)
            self.changed.notify_all()

    def object_counts(self):
        with self._lock:
            return {"%s/%s" % key if key[0] else key[1]: len(objs) for key, objs in self._objects.items() if objs}
