# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``meta.k8s.io/v1 Table`` responses, what ``kubectl get`` asks for.

Custom resources use their CRD's ``additionalPrinterColumns`` (JSONPath subset:
fields, ``['key']``, ``[n]``, ``[*]`` and ``[?(@.key=='value')]`` filters);
built-ins use the printers' main columns of kubernetes/pkg/printers/internalversion.
"""

from __future__ import annotations

import datetime
import json
import re

_TOKEN = re.compile(
    r"""\.([A-Za-z0-9_\-$]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[(\*|-?\d+)\]"""
    r"""|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|([^)\s]+))\)\]""")
_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
_NAME_DESCRIPTION = "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
_AGE_DESCRIPTION = "CreationTimestamp is a timestamp representing the server time when this object was created."


# ---- JSONPath subset -------------------------------------------------------------
def jsonpath(obj, path):
    """All values ``path`` selects in ``obj`` (a list, empty when nothing matches)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    values = [obj]
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match:
            return []
        position = match.end()
        field, quoted1, quoted2, index, filter_key, filter_op, f1, f2, f3 = match.groups()
        key = field if field is not None else (quoted1 if quoted1 is not None else quoted2)
        selected = []
        for value in values:
            if key is not None:
                if isinstance(value, dict) and key in value:
                    selected.append(value[key])
            elif index is not None:
                if isinstance(value, list):
                    if index == "*":
                        selected.extend(value)
                    elif -len(value) <= int(index) < len(value):
                        selected.append(value[int(index)])
                elif isinstance(value, dict) and index == "*":
                    selected.extend(value.values())
            elif filter_key is not None and isinstance(value, list):
                wanted = next(v for v in (f1, f2, f3) if v is not None)
                for item in value:
                    actual = _walk(item, filter_key.split("."))
                    text = _scalar_text(actual) if actual is not None else None
                    if (text == wanted) == (filter_op == "=="):
                        selected.append(item)
        values = selected
    return values


def _walk(value, keys):
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _scalar_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# ---- time ------------------------------------------------------------------------
def _parse_time(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        try:
            return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            return None


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    seconds = max(int(seconds), 0)
    minutes, hours = seconds // 60, seconds // 3600
    if seconds < 120:
        return "%ds" % seconds
    if minutes < 10:
        rest = seconds % 60
        return "%dm%ds" % (minutes, rest) if rest else "%dm" % minutes
    if minutes < 180:
        return "%dm" % minutes
    if hours < 8:
        rest = minutes % 60
        return "%dh%dm" % (hours, rest) if rest else "%dh" % hours
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        rest = hours % 24
        return "%dd%dh" % (hours // 24, rest) if rest else "%dd" % (hours // 24)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return "%dy%dd" % (hours // (24 * 365), days) if days else "%dy" % (hours // (24 * 365))
    return "%dy" % (hours // (24 * 365))


def age(timestamp):
    when = _parse_time(timestamp)
    if when is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())


# ---- column helpers ------------------------------------------------------------------
def _column(name, kind="string", description="", priority=0, fmt=""):
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


def _name_column():
    return _column("Name", fmt="name", description=_NAME_DESCRIPTION)


def _age_column():
    return _column("Age", description=_AGE_DESCRIPTION)


def _meta(obj):
    return obj.get("metadata") or {}


def _or_none(value, none="<none>"):
    return none if value in (None, "", []) else value


def _pod_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
    if _meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    return ["%d/%d" % (ready, len(spec.get("containers") or [])), reason, restarts, age(_meta(obj).get("creationTimestamp")),
            _or_none(status.get("podIP")), _or_none(spec.get("nodeName")), _or_none(status.get("nominatedNodeName")), "<none>"]


def _capacity(obj, section):
    return ((obj.get(section) or {}).get("capacity") or {}).get("storage", "")


def _modes(modes):
    return ",".join(_ACCESS_MODES.get(m, m) for m in modes or [])


def _pvc_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    phase = "Terminating" if _meta(obj).get("deletionTimestamp") else status.get("phase", "")
    return [phase, spec.get("volumeName", ""), _capacity(obj, "status"), _modes(status.get("accessModes")),
            spec.get("storageClassName", ""), spec.get("volumeAttributesClassName") or "<unset>", age(_meta(obj).get("creationTimestamp")),
            spec.get("volumeMode", "")]


def _pv_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    claim = spec.get("claimRef") or {}
    claim_text = "%s/%s" % (claim.get("namespace"), claim.get("name")) if claim else ""
    phase = "Terminating" if _meta(obj).get("deletionTimestamp") else status.get("phase", "")
    return [_capacity(obj, "spec"), _modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""), phase, claim_text,
            spec.get("storageClassName", ""), spec.get("volumeAttributesClassName") or "<unset>", status.get("reason", ""),
            age(_meta(obj).get("creationTimestamp")), spec.get("volumeMode", "")]


def _deployment_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return ["%d/%d" % (status.get("readyReplicas", 0), spec.get("replicas", 0)), status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0), age(_meta(obj).get("creationTimestamp"))]


def _statefulset_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return ["%d/%d" % (status.get("readyReplicas", 0), spec.get("replicas", 0)), age(_meta(obj).get("creationTimestamp"))]


def _replicaset_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0), age(_meta(obj).get("creationTimestamp"))]


def _daemonset_row(obj):
    status = obj.get("status") or {}
    selector = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector")
    return [status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
            status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
            ",".join("%s=%s" % kv for kv in sorted((selector or {}).items())) or "<none>", age(_meta(obj).get("creationTimestamp"))]


def _job_row(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = "Complete" if conditions.get("Complete") == "True" else "Failed" if conditions.get("Failed") == "True" else "Running"
    return [state, "%d/%d" % (status.get("succeeded", 0), spec.get("completions", 1)), "", age(_meta(obj).get("creationTimestamp"))]


def _service_row(obj):
    spec = obj.get("spec") or {}
    ports = ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP")) for p in spec.get("ports") or []) or "<none>"
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", "<none>", ports, age(_meta(obj).get("creationTimestamp"))]


def _node_row(obj):
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    roles = sorted(k.split("/", 1)[1] for k in (_meta(obj).get("labels") or {}) if k.startswith("node-role.kubernetes.io/"))
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    return ["Ready" if conditions.get("Ready") == "True" else "NotReady", ",".join(roles) or "<none>", age(_meta(obj).get("creationTimestamp")),
            info.get("kubeletVersion", "")]


def _storage_class_row(obj):
    name = _meta(obj).get("name", "")
    if (_meta(obj).get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, obj.get("provisioner", ""), obj.get("reclaimPolicy", "Delete"), obj.get("volumeBindingMode", "Immediate"),
            bool(obj.get("allowVolumeExpansion", False)), age(_meta(obj).get("creationTimestamp"))]


def _event_row(obj):
    involved = obj.get("involvedObject") or {}
    return [age(obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")), obj.get("type", ""),
            obj.get("reason", ""), "%s/%s" % ((involved.get("kind") or "").lower(), involved.get("name", "")), obj.get("message", "")]


# kind -> (columns after Name (name, type, priority), row function returning cells after Name, name cell override)
_BUILTIN = {
    "Pod": ([("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
             ("Node", "string", 1), ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)], _pod_row),
    "Namespace": ([("Status", "string", 0), ("Age", "string", 0)],
                  lambda o: [(o.get("status") or {}).get("phase", ""), age(_meta(o).get("creationTimestamp"))]),
    "PersistentVolumeClaim": ([("Status", "string", 0), ("Volume", "string", 0), ("Capacity", "string", 0), ("Access Modes", "string", 0),
                               ("StorageClass", "string", 0), ("VolumeAttributesClass", "string", 0), ("Age", "string", 0),
                               ("VolumeMode", "string", 1)], _pvc_row),
    "PersistentVolume": ([("Capacity", "string", 0), ("Access Modes", "string", 0), ("Reclaim Policy", "string", 0), ("Status", "string", 0),
                          ("Claim", "string", 0), ("StorageClass", "string", 0), ("VolumeAttributesClass", "string", 0),
                          ("Reason", "string", 0), ("Age", "string", 0), ("VolumeMode", "string", 1)], _pv_row),
    "Deployment": ([("Ready", "string", 0), ("Up-to-date", "string", 0), ("Available", "string", 0), ("Age", "string", 0)], _deployment_row),
    "StatefulSet": ([("Ready", "string", 0), ("Age", "string", 0)], _statefulset_row),
    "ReplicaSet": ([("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), ("Age", "string", 0)], _replicaset_row),
    "DaemonSet": ([("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), ("Up-to-date", "integer", 0),
                   ("Available", "integer", 0), ("Node Selector", "string", 0), ("Age", "string", 0)], _daemonset_row),
    "Job": ([("Status", "string", 0), ("Completions", "string", 0), ("Duration", "string", 0), ("Age", "string", 0)], _job_row),
    "Service": ([("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0), ("Port(s)", "string", 0),
                 ("Age", "string", 0)], _service_row),
    "ConfigMap": ([("Data", "integer", 0), ("Age", "string", 0)],
                  lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(_meta(o).get("creationTimestamp"))]),
    "Secret": ([("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
               lambda o: [o.get("type", ""), len(o.get("data") or {}), age(_meta(o).get("creationTimestamp"))]),
    "Node": ([("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0), ("Version", "string", 0)], _node_row),
    "StorageClass": ([("Provisioner", "string", 0), ("ReclaimPolicy", "string", 0), ("VolumeBindingMode", "string", 0),
                      ("AllowVolumeExpansion", "string", 0), ("Age", "string", 0)], None),
    "CustomResourceDefinition": ([("Created At", "date", 0)], lambda o: [_meta(o).get("creationTimestamp", "")]),
}
_EVENT_COLUMNS = [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
                  ("Message", "string", 0)]


def _row_object(obj, include_object):
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def _crd_columns(rtype, crd):
    """additionalPrinterColumns of the served version, defaulted to Age like the API server does."""
    columns = []
    for version in ((crd or {}).get("spec") or {}).get("versions") or []:
        if version.get("name") == rtype.version:
            columns = version.get("additionalPrinterColumns") or []
    if not columns:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    return columns


def _crd_cell(column, obj):
    values = jsonpath(obj, column.get("jsonPath", ""))
    if not values or values[0] is None:
        return None
    value, kind = values[0], column.get("type", "string")
    if kind == "string":
        return _scalar_text(value)
    if kind == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        return age(value) if isinstance(value, str) and _parse_time(value) else "<invalid>"
    return None


def build_table(rtype, items, *, crd=None, include_object="Metadata", resource_version="", continue_token=None):
    """A Table for ``items`` (objects of ``rtype``); ``crd`` is the CustomResourceDefinition for custom resources."""
    rows = []
    if rtype.is_crd:
        columns = _crd_columns(rtype, crd)
        definitions = [_name_column()]
        for column in columns:
            definitions.append(_column(column.get("name", ""), column.get("type", "string"), column.get("description", ""),
                                       int(column.get("priority", 0)), column.get("format", "")))
        for obj in items:
            rows.append({"cells": [_meta(obj).get("name", "")] + [_crd_cell(c, obj) for c in columns], "object": _row_object(obj, include_object)})
    elif rtype.kind == "Event":
        definitions = [_column(n, t, priority=p) for n, t, p in _EVENT_COLUMNS] + [_name_column()]
        definitions[-1]["priority"] = 1
        for obj in items:
            rows.append({"cells": _event_row(obj) + [_meta(obj).get("name", "")], "object": _row_object(obj, include_object)})
    elif rtype.kind in _BUILTIN:
        extra, row = _BUILTIN[rtype.kind]
        definitions = [_name_column()] + [_column(n, t, priority=p) for n, t, p in extra]
        for obj in items:
            if rtype.kind == "StorageClass":
                cells = _storage_class_row(obj)
            else:
                cells = [_meta(obj).get("name", "")] + row(obj)
            rows.append({"cells": cells, "object": _row_object(obj, include_object)})
    else:
        definitions = [_name_column(), _age_column()]
        for obj in items:
            rows.append({"cells": [_meta(obj).get("name", ""), age(_meta(obj).get("creationTimestamp"))],
                         "object": _row_object(obj, include_object)})
    metadata = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows}


def wants_table(accept):
    """True when the Accept header asks for a meta.k8s.io Table first (kubectl get)."""
    for part in (accept or "").split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return True
        if part.strip():
            return False
    return False
