# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Custom resources against their CRD's structural ``openAPIV3Schema``.

What the API server does, in order: drop ``null`` for non-nullable fields,
prune fields the schema does not declare (unless
``x-kubernetes-preserve-unknown-fields``), apply ``default`` values, then
validate.  Messages follow apiextensions-apiserver's translation of
kube-openapi errors into field errors (``kubeOpenAPIResultToFieldErrors``).
Validation ratchets on update (CRDValidationRatcheting, on by default since
1.30): an error on a value that did not change is not reported.

Not modelled: ``x-kubernetes-validations`` (CEL), ``allOf``/``anyOf``/``oneOf``/
``not``, ``multipleOf``, ``uniqueItems``, string formats other than
date-time/date/uuid/byte/ipv4/ipv6.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import ipaddress
import json
import re

from .. import api_errors as errors

# ObjectMeta fields a custom resource keeps; anything else under metadata is dropped on decode.
OBJECT_META_FIELDS = frozenset((
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields",
))
_TYPE_NAMES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (dict, "object"), (list, "array"))
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
# strfmt.IsDateTime: RFC 3339 with a mandatory zone.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_MISSING = object()


def json_type(value):
    for python_type, name in _TYPE_NAMES:
        if isinstance(value, python_type):
            return name
    return "null" if value is None else type(value).__name__


def _go_value(value):
    """How field.Error prints a bad value: strings quoted, numbers and booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _child(path, key):
    return "%s.%s" % (path, key) if path else key


# ---- pruning and defaulting ------------------------------------------------
def prune(obj, schema):
    """Remove undeclared fields in place; returns their paths (e.g. ``spec.bogus``)."""
    removed = []
    if not isinstance(obj, dict) or not schema:
        return removed
    for key in list(obj):
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            if isinstance(obj["metadata"], dict):
                for meta_key in [k for k in obj["metadata"] if k not in OBJECT_META_FIELDS]:
                    del obj["metadata"][meta_key]
                    removed.append("metadata." + meta_key)
            continue
        sub = (schema.get("properties") or {}).get(key)
        if sub is None:
            if not schema.get("x-kubernetes-preserve-unknown-fields"):
                del obj[key]
                removed.append(key)
            continue
        _prune_value(obj, key, sub, key, removed)
    return removed


def _prune_value(container, key, schema, path, removed):
    value = container[key]
    if value is None:
        if not schema.get("nullable"):
            del container[key]
        return
    _prune_node(value, schema, path, removed)


def _prune_node(value, schema, path, removed):
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or additional is True
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            if embedded and key in ("apiVersion", "kind", "metadata"):
                continue
            if props is not None and key in props:
                _prune_value(value, key, props[key], _child(path, key), removed)
            elif isinstance(additional, dict):
                _prune_value(value, key, additional, _child(path, key), removed)
            elif not preserve and (props is not None or additional is False or schema.get("type") == "object"):
                del value[key]
                removed.append(_child(path, key))
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                if item is not None:
                    _prune_node(item, items, "%s[%d]" % (path, index), removed)


def unknown_fields(obj, schema):
    """Paths pruning would remove, without touching ``obj``."""
    return prune(copy.deepcopy(obj), schema)


def apply_defaults(obj, schema):
    """Fill ``default`` values of absent properties in place (recursively, also into defaulted values)."""
    if not isinstance(obj, dict) or not schema:
        return
    _default_node(obj, schema, root=True)


def _default_node(value, schema, root=False):
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value and value[key] is not None:
                _default_node(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, item in value.items():
                if key not in props and item is not None:
                    _default_node(item, additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            if item is not None:
                _default_node(item, schema["items"])


# ---- validation -------------------------------------------------------------
def validate(obj, schema, old=None):
    """Return field errors ``(field, message, reason)`` for ``obj``; with ``old``, unchanged values ratchet."""
    found = []
    if not schema or not isinstance(obj, dict):
        return found
    for key, sub in (schema.get("properties") or {}).items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in obj:
            _validate_node(obj[key], sub, key, found)
    for key in schema.get("required") or []:
        if key not in ("apiVersion", "kind", "metadata") and obj.get(key) is None:
            found.append((key, "Required value", "FieldValueRequired", ""))
    if old is not None:
        found = [err for err in found if not _unchanged(obj, old, err[3] if err[2] == "FieldValueRequired" else err[0])]
    return [(path, message, reason) for path, message, reason, _parent in found]


def _lookup(obj, path):
    if path == "":
        return obj
    current = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(current, list) or index >= len(current):
                return _MISSING
            current = current[index]
        else:
            if not isinstance(current, dict) or part not in current:
                return _MISSING
            current = current[part]
    return current


def _unchanged(new, old, path):
    before = _lookup(old, path)
    return before is not _MISSING and before == _lookup(new, path)


def _type_ok(value, expected):
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return json_type(value) == expected


def _type_error(path, value, expected):
    actual = json_type(value)
    return (path, 'Invalid value: "%s": %s in body must be of type %s: "%s"' % (actual, path, expected, actual), "FieldValueTypeInvalid", "")


def _invalid(path, value, detail):
    return (path, "Invalid value: %s: %s" % (_go_value(value), detail), "FieldValueInvalid", "")


def _format_ok(value, fmt):
    try:
        if fmt in ("date-time", "datetime"):
            if not _DATE_TIME.match(value):
                return False
            datetime.date.fromisoformat(value[:10])
        elif fmt == "date":
            datetime.date.fromisoformat(value)
        elif fmt == "uuid":
            return bool(_UUID.match(value))
        elif fmt == "byte":
            base64.b64decode(value, validate=True)
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
    except (ValueError, binascii.Error):
        return False
    return True


def _number(limit):
    return int(limit) if isinstance(limit, float) and limit.is_integer() else limit


def _validate_node(value, schema, path, found):
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            found.append((path, 'Invalid value: "null": %s in body must be of type %s: "null"' % (path, schema["type"]),
                          "FieldValueTypeInvalid", ""))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (_type_ok(value, "integer") or isinstance(value, str)):
            found.append(_type_error(path, value, "integer,string"))
            return
    elif schema.get("type") and not _type_ok(value, schema["type"]):
        found.append(_type_error(path, value, schema["type"]))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v if isinstance(v, str) else json.dumps(v)) for v in schema["enum"])
        found.append((path, "Unsupported value: %s: supported values: %s" % (_go_value(value), supported), "FieldValueNotSupported", ""))
    if isinstance(value, str):
        _validate_string(value, schema, path, found)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, found)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, found)
    elif isinstance(value, list):
        _validate_array(value, schema, path, found)


def _validate_string(value, schema, path, found):
    if schema.get("format") and schema.get("type") == "string" and not _format_ok(value, schema["format"]):
        found.append((path, 'Invalid value: %s: %s in body must be of type %s: %s' % (
            _go_value(value), path, schema["format"], json.dumps(value)), "FieldValueTypeInvalid", ""))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        found.append((path, "Too long: may not be more than %d bytes" % schema["maxLength"], "FieldValueTooLong", ""))
    if "minLength" in schema and len(value) < schema["minLength"]:
        found.append(_invalid(path, value, "%s in body should be at least %d chars long" % (path, schema["minLength"])))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(_invalid(path, value, "%s in body should match '%s'" % (path, schema["pattern"])))


def _validate_number(value, schema, path, found):
    if "maximum" in schema:
        limit = schema["maximum"]
        if value > limit or (schema.get("exclusiveMaximum") and value == limit):
            word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
            found.append(_invalid(path, value, "%s in body should be %s %s" % (path, word, _number(limit))))
    if "minimum" in schema:
        limit = schema["minimum"]
        if value < limit or (schema.get("exclusiveMinimum") and value == limit):
            word = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
            found.append(_invalid(path, value, "%s in body should be %s %s" % (path, word, _number(limit))))


def _validate_object(value, schema, path, found):
    props = schema.get("properties") or {}
    for key, sub in props.items():
        if key in value:
            _validate_node(value[key], sub, _child(path, key), found)
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        for key, item in value.items():
            if key not in props:
                _validate_node(item, additional, _child(path, key), found)
    for key in schema.get("required") or []:
        if value.get(key) is None:
            found.append((_child(path, key), "Required value", "FieldValueRequired", path))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        found.append((path, "Too many: %d: must have at most %d items" % (len(value), schema["maxProperties"]), "FieldValueTooMany", ""))


def _validate_array(value, schema, path, found):
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        found.append((path, "Too many: %d: must have at most %d items" % (len(value), schema["maxItems"]), "FieldValueTooMany", ""))
    if "minItems" in schema and len(value) < schema["minItems"]:
        found.append(_invalid(path, value, "%s in body should have at least %d items" % (path, schema["minItems"])))
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate_node(item, items, "%s[%d]" % (path, index), found)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        seen = []
        for index, item in enumerate(value):
            if item in seen:
                found.append(("%s[%d]" % (path, index), "Duplicate value: %s" % _go_value(item), "FieldValueDuplicate", ""))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = {k: item.get(k) for k in keys}
            if key in seen:
                found.append(("%s[%d]" % (path, index), "Duplicate value: %s" % json.dumps(key, sort_keys=True), "FieldValueDuplicate", ""))
            seen.append(key)


# ---- store admission hooks --------------------------------------------------
def _schema_of(request):
    rtype = request.rtype
    if request.obj is None or not getattr(rtype, "is_crd", False):
        return None
    return rtype.schema or None


def schema_mutator(request):
    """Prune and default a custom resource (no-op for kinds without a schema)."""
    schema = _schema_of(request)
    if schema is None:
        return
    prune(request.obj, schema)
    apply_defaults(request.obj, schema)


def schema_validator(request):
    """422 Invalid when a custom resource does not match its schema (no-op for kinds without a schema)."""
    schema = _schema_of(request)
    if schema is None:
        return
    old = request.old if request.operation == "UPDATE" else None
    causes = validate(request.obj, schema, old)
    if causes:
        rtype = request.rtype
        raise errors.Invalid(rtype.kind, request.obj.get("metadata", {}).get("name", ""), causes, group=rtype.group)


def register(store):
    store.add_mutator(schema_mutator)
    store.add_validator(schema_validator)
