# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab API server's audit log: one JSON object per request and line.

Secret values never reach the log: for requests on Secrets the values of
``data``/``stringData`` (also inside a JSON patch and inside the
``kubectl.kubernetes.io/last-applied-configuration`` annotation) become
``"<masked>"``.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import threading

MASK = "<masked>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_SECTIONS = ("data", "stringData")


def _mask_secret_object(obj):
    if not isinstance(obj, dict):
        return obj
    for section in _SECRET_SECTIONS:
        if isinstance(obj.get(section), dict):
            obj[section] = {key: MASK for key in obj[section]}
        elif section in obj and obj[section] is not None:
            obj[section] = MASK
    annotations = (obj.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and isinstance(annotations.get(LAST_APPLIED), str):
        annotations[LAST_APPLIED] = _mask_last_applied(annotations[LAST_APPLIED])
    if isinstance(obj.get("items"), list):
        obj["items"] = [_mask_secret_object(item) for item in obj["items"]]
    return obj


def _mask_last_applied(text):
    try:
        inner = json.loads(text)
    except ValueError:
        return MASK
    return json.dumps(_mask_secret_object(inner), sort_keys=True, separators=(",", ":"))


def _mask_json_patch(operations):
    masked = []
    for operation in operations:
        if not isinstance(operation, dict):
            masked.append(MASK)
            continue
        operation = dict(operation)
        path = str(operation.get("path", ""))
        if "value" in operation:
            if path in ("/data", "/stringData"):
                operation["value"] = {key: MASK for key in operation["value"]} if isinstance(operation["value"], dict) else MASK
            elif path.startswith(("/data/", "/stringData/")):
                operation["value"] = MASK
            elif path.endswith("last-applied-configuration") and isinstance(operation["value"], str):
                operation["value"] = _mask_last_applied(operation["value"])
            elif path in ("", "/") or path == "/metadata" or path == "/metadata/annotations":
                operation["value"] = _mask_secret_object(copy.deepcopy(operation["value"])) if isinstance(operation["value"], dict) else MASK
        masked.append(operation)
    return masked


def mask_body(body, resource):
    """A copy of a request body fit for the log; ``resource`` is the plural the request addresses."""
    is_secret = resource == "secrets" or (isinstance(body, dict) and body.get("kind") in ("Secret", "SecretList"))
    if not is_secret:
        return body
    if isinstance(body, list):
        return _mask_json_patch(body)
    if isinstance(body, dict):
        return _mask_secret_object(copy.deepcopy(body))
    return MASK


class AuditLog:
    """Thread-safe JSON-lines writer, flushed per line."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

    def record(self, *, verb, method, path, query, dry_run, write, code, user_agent, body=None, resource=None):
        entry = {
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "verb": verb,
            "method": method,
            "path": path,
            "query": query,
            "dryRun": bool(dry_run),
            "write": bool(write),
            "code": code,
            "user_agent": user_agent,
        }
        if write and body is not None:
            entry["body"] = mask_body(body, resource)
        line = json.dumps(entry, sort_keys=True, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self):
        with self._lock:
            if not self._file.closed:
                self._file.close()


def read_audit(path):
    """All entries of an audit log, oldest first."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
