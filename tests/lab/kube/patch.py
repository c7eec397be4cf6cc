# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Patch mechanics of the lab API server.

* ``application/merge-patch+json``: RFC 7386.
* ``application/json-patch+json``: RFC 6902 (the ``jsonpatch`` package).
* ``application/strategic-merge-patch+json``: built-in kinds only, with the
  patch merge keys of the fields the collection and kubectl touch.
* ``application/apply-patch+yaml``: server-side apply with managedFields.

Server-side apply model (simplified from sigs.k8s.io/structured-merge-diff):
field ownership is tracked per manager as FieldsV1 sets of leaf paths; a list
is granular only when it has a merge key (built-ins) or
``x-kubernetes-list-type: map|set`` (CRDs), otherwise atomic.  Applying a field
that another manager owns with a different value is a 409 conflict unless
``force=true``, which transfers ownership.  Fields a manager applied before and
no longer applies are removed when nobody else owns them.  Non-apply writes
(create, update, patch) record an ``Update`` entry for the fields they changed
(manager from ``fieldManager`` or the User-Agent prefix) and take those fields
away from other managers, as the API server does.  Not modelled: multi-key
list maps, ``$retainKeys`` ownership, version conversion of managedFields,
managedFields supplied by clients (they are ignored).
"""

from __future__ import annotations

import copy
import json

import jsonpatch
import jsonpointer

from .. import api_errors as errors

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
BUILTIN_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
CUSTOM_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

_MISSING = object()
_DELETE = object()

# Patch merge keys of built-in types (k8s.io/api generated.proto), matched on the
# longest suffix of the field-name path (list indexes are not part of the path).
_BUILTIN_MERGE_KEYS = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("ephemeralContainers",): "name",
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
    ("hostAliases",): "ip",
    ("topologySpreadConstraints",): "topologyKey",
    ("schedulingGates",): "name",
    ("resourceClaims",): "name",
    ("env",): "name",
    ("volumeMounts",): "mountPath",
    ("volumeDevices",): "devicePath",
    ("containers", "ports"): "containerPort",
    ("initContainers", "ports"): "containerPort",
    ("ephemeralContainers", "ports"): "containerPort",
    ("conditions",): "type",
    ("metadata", "ownerReferences"): "uid",
    ("status", "addresses"): "type",
    ("secrets",): "name",
}
# Service ports merge on "port"; only at the top of a Service spec.
_SERVICE_PORTS = ("spec", "ports")
# Lists of scalars with patchStrategy "merge": merged as sets.
_BUILTIN_SET_LISTS = {("metadata", "finalizers")}
# Never part of field ownership (server-managed or identity).
_IGNORED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName")


def _unprocessable(message):
    """What apiserver's NewGenericServerResponse(422) looks like."""
    return errors.ApiError("the server rejected our request due to an error in our request", code=422, reason="Invalid",
                           details={"causes": [{"reason": "UnexpectedServerResponse", "message": message}]})


# ---- list semantics ---------------------------------------------------------
class BuiltinListTypes:
    """List merge semantics of built-in kinds."""

    def __init__(self, kind):
        self.kind = kind

    def strategy(self, names):
        """``("map", key)``, ``("set", None)`` or None (atomic) for the list at field path ``names``."""
        names = tuple(names)
        if names in _BUILTIN_SET_LISTS:
            return ("set", None)
        if self.kind == "Service" and names == _SERVICE_PORTS:
            return ("map", "port")
        best = None
        for suffix, key in _BUILTIN_MERGE_KEYS.items():
            if len(suffix) <= len(names) and names[-len(suffix):] == suffix and (best is None or len(suffix) > len(best[0])):
                best = (suffix, key)
        if best is None:
            return None
        if best[0] == ("secrets",) and self.kind != "ServiceAccount":
            return None
        if best[0] == ("status", "addresses") and self.kind != "Node":
            return None
        return ("map", best[1])


class SchemaListTypes:
    """List semantics from a CRD's structural schema (``x-kubernetes-list-type``)."""

    def __init__(self, schema):
        self.schema = schema or {}

    def strategy(self, names):
        if tuple(names) == ("metadata", "finalizers"):
            return ("set", None)
        if tuple(names[:1]) == ("metadata",):
            return ("map", "uid") if tuple(names) == ("metadata", "ownerReferences") else None
        node = self.schema
        for name in names:
            while node.get("type") == "array":
                node = node.get("items") or {}
            props = node.get("properties") or {}
            if name in props:
                node = props[name]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                return None
        list_type = node.get("x-kubernetes-list-type")
        if list_type == "set":
            return ("set", None)
        if list_type == "map" and node.get("x-kubernetes-list-map-keys"):
            return ("map", node["x-kubernetes-list-map-keys"][0])
        return None


def list_types_for(rtype):
    return SchemaListTypes(rtype.schema) if rtype.is_crd else BuiltinListTypes(rtype.kind)


# ---- JSON merge patch ------------------------------------------------------
def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- JSON patch -----------------------------------------------------------
def json_patch(target, operations):
    """RFC 6902; a failing operation (including ``test``) is a 422 as in the API server."""
    if not isinstance(operations, list):
        raise errors.BadRequest("json: cannot unmarshal %s into Go value of type jsonpatch.Patch" % type(operations).__name__)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise errors.BadRequest("invalid JSON patch operation: %s" % json.dumps(operation))
    try:
        return jsonpatch.JsonPatch(operations).apply(copy.deepcopy(target))
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise _unprocessable(str(exc)) from exc


# ---- strategic merge patch ------------------------------------------------
def strategic_merge_patch(target, patch, list_types):
    if not isinstance(patch, dict):
        raise errors.BadRequest("json: cannot unmarshal %s into Go value of type map[string]interface {}" % type(patch).__name__)
    result = _smp_map(target if isinstance(target, dict) else {}, patch, (), list_types)
    return {} if result is _DELETE else result


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if k != "$patch" and k != "$retainKeys" and not k.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return copy.deepcopy(value)


def _smp_map(original, patch, path, list_types):
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return _DELETE
    if directive not in (None, "merge"):
        raise errors.BadRequest("Unknown patch type: %s in map: %s" % (directive, json.dumps(patch)))
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = path + (key,)
        if isinstance(value, list):
            result[key] = _smp_list(result.get(key), value, child, list_types)
        elif isinstance(value, dict):
            merged = _smp_map(result.get(key), value, child, list_types)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _is_directive(item, name):
    return isinstance(item, dict) and item.get("$patch") == name


def _smp_list(original, patch_list, path, list_types):
    strategy = list_types.strategy(path)
    if any(_is_directive(item, "replace") for item in patch_list):
        return [_strip_directives(item) for item in patch_list if not _is_directive(item, "replace")]
    if strategy is None:
        return [_strip_directives(item) for item in patch_list]
    result = copy.deepcopy(original) if isinstance(original, list) else []
    if strategy[0] == "set":
        for item in patch_list:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    key = strategy[1]
    for item in patch_list:
        if not isinstance(item, dict) or key not in item:
            raise errors.InternalError("map: %s does not contain declared merge key: %s" % (json.dumps(item), key))
        index = next((i for i, existing in enumerate(result) if isinstance(existing, dict) and existing.get(key) == item[key]), None)
        if _is_directive(item, "delete"):
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_strip_directives(item))
        else:
            merged = _smp_map(result[index], item, path, list_types)
            if merged is _DELETE:
                del result[index]
            else:
                result[index] = merged
    return result


# ---- field sets (managedFields) -------------------------------------------
def _key_segment(key, value):
    return "k:" + json.dumps({key: value}, separators=(",", ":"))


def _value_segment(value):
    return "v:" + json.dumps(value, separators=(",", ":"))


def field_set(obj, list_types, *, include_status=True):
    """Leaf paths (tuples of FieldsV1 segments) an object sets."""
    paths = set()
    for key, value in (obj or {}).items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "status" and not include_status:
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _IGNORED_META}
            if not value:
                continue
        _collect(value, ("f:" + key,), (key,), list_types, paths)
    return paths


def _collect(value, path, names, list_types, paths):
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _collect(child, path + ("f:" + key,), names + (key,), list_types, paths)
        return
    if isinstance(value, list) and value:
        strategy = list_types.strategy(names)
        if strategy is not None and strategy[0] == "set" and all(not isinstance(v, (dict, list)) for v in value):
            for item in value:
                paths.add(path + (_value_segment(item),))
            return
        if strategy is not None and strategy[0] == "map" and all(isinstance(v, dict) and strategy[1] in v for v in value):
            for item in value:
                item_path = path + (_key_segment(strategy[1], item[strategy[1]]),)
                paths.add(item_path + (".",))
                for key, child in item.items():
                    _collect(child, item_path + ("f:" + key,), names + (key,), list_types, paths)
            return
    paths.add(path)


def value_at(obj, path):
    """The value at a FieldsV1 path, or a sentinel when absent; "." yields True for a present item."""
    current = obj
    for segment in path:
        if segment == ".":
            return True
        if segment.startswith("f:"):
            if not isinstance(current, dict) or segment[2:] not in current:
                return _MISSING
            current = current[segment[2:]]
        elif segment.startswith("k:"):
            ((key, wanted),) = json.loads(segment[2:]).items()
            if not isinstance(current, list):
                return _MISSING
            current = next((item for item in current if isinstance(item, dict) and item.get(key) == wanted), _MISSING)
            if current is _MISSING:
                return _MISSING
        elif segment.startswith("v:"):
            wanted = json.loads(segment[2:])
            return wanted if isinstance(current, list) and wanted in current else _MISSING
        else:
            return _MISSING
    return current


def remove_at(obj, path):
    """Delete the field (or list item for "." / "v:" paths) at ``path``; prune maps emptied on the way."""
    if not path:
        return
    if path[-1] == ".":
        path = path[:-1]
    parents = []
    current = obj
    for segment in path[:-1]:
        parents.append(current)
        current = value_at(current, (segment,))
        if current is _MISSING:
            return
    last = path[-1]
    if last.startswith("f:") and isinstance(current, dict):
        current.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(current, list):
        ((key, wanted),) = json.loads(last[2:]).items()
        current[:] = [item for item in current if not (isinstance(item, dict) and item.get(key) == wanted)]
    elif last.startswith("v:") and isinstance(current, list):
        wanted = json.loads(last[2:])
        current[:] = [item for item in current if item != wanted]
    # Drop containers left empty by the removal (not the top-level sections).
    for depth in range(len(path) - 2, 0, -1):
        container = value_at(obj, path[:depth + 1])
        if container in ({}, []):
            remove_at(obj, path[:depth + 1])
        else:
            break


def to_fields_v1(paths):
    tree = {}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
    return tree


def from_fields_v1(tree, prefix=()):
    paths = set()
    for segment, sub in (tree or {}).items():
        if sub:
            paths |= from_fields_v1(sub, prefix + (segment,))
        else:
            paths.add(prefix + (segment,))
    return paths


def path_string(path):
    """Human form used in conflict messages, e.g. ``.spec.containers[name="app"].image``."""
    text = ""
    for segment in path:
        if segment == ".":
            continue
        if segment.startswith("f:"):
            text += "." + segment[2:]
        elif segment.startswith("k:"):
            ((key, value),) = json.loads(segment[2:]).items()
            text += "[%s=%s]" % (key, json.dumps(value))
        elif segment.startswith("v:"):
            text += "[=%s]" % segment[2:]
    return text


def manager_from(field_manager, user_agent):
    """``fieldManager`` or the User-Agent prefix, as ``managerOrUserAgent`` in the API server."""
    if field_manager:
        return field_manager
    return (user_agent or "unknown").split("/", 1)[0][:128]


class ManagedFields:
    """The ``metadata.managedFields`` of one object, as path sets."""

    def __init__(self, entries):
        self.entries = []
        for entry in entries or []:
            if not isinstance(entry, dict) or not entry.get("manager"):
                continue
            self.entries.append({"entry": {k: v for k, v in entry.items() if k != "fieldsV1"},
                                 "paths": from_fields_v1(entry.get("fieldsV1"))})

    def _find(self, manager, operation, subresource):
        for item in self.entries:
            entry = item["entry"]
            if entry.get("manager") == manager and entry.get("operation") == operation and entry.get("subresource") == subresource:
                return item
        return None

    def set_paths(self, manager, operation, subresource, paths, api_version, now):
        item = self._find(manager, operation, subresource)
        if item is None:
            entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now, "fieldsType": "FieldsV1"}
            if subresource:
                entry["subresource"] = subresource
            item = {"entry": entry, "paths": set()}
            self.entries.append(item)
        if item["paths"] != paths:
            item["entry"]["time"] = now
            item["entry"]["apiVersion"] = api_version
        item["paths"] = set(paths)

    def paths_of(self, manager, operation, subresource):
        item = self._find(manager, operation, subresource)
        return set(item["paths"]) if item else set()

    def others(self, manager, operation, subresource):
        return [item for item in self.entries
                if (item["entry"].get("manager"), item["entry"].get("operation"), item["entry"].get("subresource")) != (manager, operation, subresource)]

    def to_list(self):
        result = []
        for item in self.entries:
            if not item["paths"]:
                continue
            entry = dict(item["entry"])
            entry["fieldsV1"] = to_fields_v1(item["paths"])
            result.append(entry)
        return result


def _owned_fields(obj, rtype, subresource):
    """The part of an object a write to ``subresource`` can own."""
    list_types = list_types_for(rtype)
    if subresource == "status":
        return field_set({"status": obj.get("status")} if "status" in obj else {}, list_types)
    return field_set(obj, list_types, include_status=not rtype.has_status)


def record_update(current, new, rtype, manager, subresource, now):
    """Give ``manager`` (operation Update) the fields that differ between ``current`` and ``new``; returns ``new``."""
    new_meta = new.setdefault("metadata", {})
    if current is None:
        paths = _owned_fields(new, rtype, subresource)
        managed = ManagedFields([])
        managed.set_paths(manager, "Update", subresource, paths, rtype.api_version, now)
        new_meta["managedFields"] = managed.to_list()
        if not new_meta["managedFields"]:
            new_meta.pop("managedFields")
        return new
    old_paths = _owned_fields(current, rtype, subresource)
    new_paths = _owned_fields(new, rtype, subresource)
    changed = {p for p in old_paths | new_paths if _differs(current, new, p)}
    managed = ManagedFields(current.get("metadata", {}).get("managedFields"))
    if not changed:
        _restore_managed(new, current)
        return new
    for item in managed.entries:
        item["paths"] -= changed
    mine = managed.paths_of(manager, "Update", subresource)
    mine |= {p for p in changed if p in new_paths}
    managed.set_paths(manager, "Update", subresource, mine, rtype.api_version, now)
    new_meta["managedFields"] = managed.to_list()
    if not new_meta["managedFields"]:
        new_meta.pop("managedFields")
    return new


def _restore_managed(new, current):
    cur = current.get("metadata", {}).get("managedFields")
    if cur is None:
        new["metadata"].pop("managedFields", None)
    else:
        new["metadata"]["managedFields"] = copy.deepcopy(cur)


def _differs(old, new, path):
    before, after = value_at(old, path), value_at(new, path)
    if path[-1] == ".":
        return (before is _MISSING) != (after is _MISSING)
    return before != after


def _apply_merge(target, applied, names, list_types):
    """Merge an applied configuration into an object (maps recurse, lists follow their list type)."""
    for key, value in applied.items():
        child_names = names + (key,)
        if isinstance(value, dict) and isinstance(target.get(key), dict) and value:
            _apply_merge(target[key], value, child_names, list_types)
        elif isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = _apply_list(target[key], value, child_names, list_types)
        else:
            target[key] = copy.deepcopy(value)


def _apply_list(current, applied, names, list_types):
    strategy = list_types.strategy(names)
    if strategy is None:
        return copy.deepcopy(applied)
    result = copy.deepcopy(current)
    if strategy[0] == "set":
        for item in applied:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    key = strategy[1]
    for item in applied:
        if not isinstance(item, dict) or key not in item:
            raise errors.BadRequest("associative list with keys has an element that omits key field \"%s\"" % key)
        index = next((i for i, existing in enumerate(result) if isinstance(existing, dict) and existing.get(key) == item[key]), None)
        if index is None:
            result.append(copy.deepcopy(item))
        else:
            _apply_merge(result[index], item, names, list_types)
    return result


def _manager_label(entry):
    label = '"%s"' % entry.get("manager")
    if entry.get("subresource"):
        label += ' with subresource "%s"' % entry["subresource"]
    if entry.get("operation") == "Update":
        label += " using %s" % entry.get("apiVersion")
    return label


def apply_conflict(conflicts):
    """409 as ``NewApplyConflict``: ``conflicts`` is a list of ``(entry, path)``."""
    causes = [{"reason": "FieldManagerConflict", "message": "conflict with %s" % _manager_label(entry), "field": path_string(path)}
              for entry, path in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = "Apply failed with 1 conflict: conflict with %s: %s" % (_manager_label(entry), path_string(path))
    else:
        by_manager = {}
        for entry, path in conflicts:
            by_manager.setdefault(_manager_label(entry), []).append(path_string(path))
        lines = []
        for label in sorted(by_manager):
            lines.append("conflicts with %s:" % label)
            lines.extend("- %s" % p for p in sorted(by_manager[label]))
        message = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(lines))
    return errors.ApiError(message, code=409, reason="Conflict", details={"causes": causes})


def server_side_apply(current, applied, rtype, manager, *, force=False, subresource=None, now=""):
    """Return the object after applying ``applied`` as ``manager``; ``current`` is None to create."""
    list_types = list_types_for(rtype)
    applied = copy.deepcopy(applied)
    if subresource == "status":
        applied = {k: v for k, v in applied.items() if k in ("apiVersion", "kind", "metadata", "status")}
    elif rtype.has_status:
        applied.pop("status", None)
    applied_paths = field_set(applied, list_types, include_status=subresource == "status" or not rtype.has_status)
    if current is None:
        new = {}
        _apply_merge(new, applied, (), list_types)
        managed = ManagedFields([])
        managed.set_paths(manager, "Apply", subresource, applied_paths, rtype.api_version, now)
        new.setdefault("metadata", {})["managedFields"] = managed.to_list()
        return new
    entries = current.get("metadata", {}).get("managedFields")
    if not entries:
        # Objects never managed: everything belongs to "before-first-apply", so the first apply deletes nothing.
        entries = [{"manager": "before-first-apply", "operation": "Update", "apiVersion": rtype.api_version, "time": now,
                    "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(_owned_fields(current, rtype, subresource))}]
    managed = ManagedFields(entries)
    conflicts = []
    for item in managed.others(manager, "Apply", subresource):
        for path in sorted(item["paths"] & applied_paths):
            if path[-1] != "." and value_at(current, path) != value_at(applied, path):
                conflicts.append((item, path))
    if conflicts and not force:
        raise apply_conflict([(item["entry"], path) for item, path in conflicts])
    for item, path in conflicts:
        item["paths"].discard(path)
    previous = managed.paths_of(manager, "Apply", subresource)
    owned_by_others = set()
    for item in managed.others(manager, "Apply", subresource):
        owned_by_others |= item["paths"]
    new = copy.deepcopy(current)
    for path in sorted(previous - applied_paths - owned_by_others, key=len, reverse=True):
        remove_at(new, path)
    _apply_merge(new, applied, (), list_types)
    changed_values = _differs_any(current, new)
    if not changed_values and previous == applied_paths and not conflicts and current.get("metadata", {}).get("managedFields"):
        return new
    managed.set_paths(manager, "Apply", subresource, applied_paths, rtype.api_version, now)
    new.setdefault("metadata", {})["managedFields"] = managed.to_list()
    return new


def _without_managed(obj):
    stripped = dict(obj)
    stripped["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return stripped


def _differs_any(current, new):
    return _without_managed(current) != _without_managed(new)
