# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Label and field selectors with the syntax the Kubernetes API accepts."""

from __future__ import annotations

import re

from ..api_errors import BadRequest

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9./_-]*)\s*$")


def _split_top_level(text):
    """Split on commas that are not inside ``( )``."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def parse_label_selector(text):
    """Return a list of ``(key, op, values)``; op is one of eq, neq, in, notin, exists, notexists."""
    requirements = []
    for part in _split_top_level(text or ""):
        match = _EQ_RE.match(part)
        if match:
            key, op, value = match.groups()
            requirements.append((key, "neq" if op == "!=" else "eq", (value,)))
            continue
        match = _SET_RE.match(part)
        if not match:
            raise BadRequest("unable to parse requirement: invalid label selector %r" % part)
        negate, key, op, values = match.groups()
        if op:
            if negate:
                raise BadRequest("unable to parse requirement: invalid label selector %r" % part)
            requirements.append((key, op, tuple(v.strip() for v in values.split(",") if v.strip())))
        else:
            requirements.append((key, "notexists" if negate else "exists", ()))
    return requirements


def match_labels(requirements, labels):
    labels = labels or {}
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "eq" and value != values[0]:
            return False
        if op == "neq" and present and value == values[0]:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "notexists" and present:
            return False
    return True


def parse_field_selector(text):
    requirements = []
    for part in _split_top_level(text or ""):
        match = _EQ_RE.match(part)
        if not match:
            raise BadRequest("invalid field selector %r: only =, == and != are supported" % part)
        key, op, value = match.groups()
        requirements.append((key, "neq" if op == "!=" else "eq", value))
    return requirements


def field_value(obj, path):
    current = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def match_fields(requirements, obj):
    for key, op, value in requirements:
        actual = field_value(obj, key)
        if (op == "eq") != (actual == value):
            return False
    return True


def selector_from_match_labels(selector):
    """Turn a ``LabelSelector`` object (matchLabels/matchExpressions) into requirements."""
    requirements = [(k, "eq", (v,)) for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    op_map = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "notexists"}
    for expr in (selector or {}).get("matchExpressions", []) or []:
        requirements.append((expr["key"], op_map[expr["operator"]], tuple(expr.get("values") or ())))
    return requirements
