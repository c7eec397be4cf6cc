# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Defaulting, validation and admission plugins of built-in kinds (the parts the collection meets).

Messages follow k8s.io/kubernetes pkg/apis/core/validation and apps/validation
(v1.33).  Deliberately not modelled: Pod spec immutability (lab controllers
write pods directly), Service clusterIP immutability, Job selector generation,
quota and limit ranges.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import itertools
import re
import threading

from kubernetes.utils import parse_quantity

from .. import api_errors as errors
from .selectors import match_labels, selector_from_match_labels
from .store import now_rfc3339

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                  "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                  "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_DNS_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with "
                  "an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
                      "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_PV_SOURCES = ("awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc", "flexVolume", "flocker",
               "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local", "nfs", "photonPersistentDisk", "portworxVolume",
               "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume")
_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy", "minReadySeconds",
                "revisionHistoryLimit")
_STS_FORBIDDEN = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
                  "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")
_PVC_IMMUTABLE = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def go_string_map(value):
    """How Go's %#v prints a map[string]string."""
    if value is None:
        return "map[string]string(nil)"
    return "map[string]string{%s}" % ", ".join('"%s":"%s"' % (k, v) for k, v in sorted(value.items()))


def go_label_selector(selector):
    selector = selector or {}
    expressions = selector.get("matchExpressions")
    exprs = "[]v1.LabelSelectorRequirement(nil)" if not expressions else "[]v1.LabelSelectorRequirement{%s}" % ", ".join(
        'v1.LabelSelectorRequirement{Key:"%s", Operator:"%s", Values:[]string{%s}}' % (
            e.get("key"), e.get("operator"), ", ".join('"%s"' % v for v in e.get("values") or [])) for e in expressions)
    return "v1.LabelSelector{MatchLabels:%s, MatchExpressions:%s}" % (go_string_map(selector.get("matchLabels")), exprs)


def _quoted(value):
    return '"%s"' % value


def _quantity(value):
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return None


# ---- defaulting ---------------------------------------------------------------
def _default_container(container):
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")


def default_pod_spec(spec):
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("secret", "configMap"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")


def _default_template(spec):
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        default_pod_spec(template.get("spec"))


def _default_workload(kind, spec):
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        spec.setdefault("replicas", 1)
    if kind == "Deployment":
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", "25%")
            strategy["rollingUpdate"].setdefault("maxSurge", "25%")
    elif kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        policy.setdefault("whenDeleted", "Retain")
        policy.setdefault("whenScaled", "Retain")
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict):
                claim.setdefault("apiVersion", "v1")
                claim.setdefault("kind", "PersistentVolumeClaim")
                claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
                claim.setdefault("status", {"phase": "Pending"})
    elif kind == "DaemonSet":
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", 1)
            strategy["rollingUpdate"].setdefault("maxSurge", 0)
    _default_template(spec)


class _ServiceIPs:
    """ClusterIP allocation from k3s' default service CIDR 10.43.0.0/16."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next = itertools.count(10)

    def allocate(self):
        with self._lock:
            return str(ipaddress.IPv4Address("10.43.0.0") + next(self._next))


def _default_service(spec, ips, dry_run):
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if not spec.get("clusterIP"):
        spec["clusterIP"] = "10.43.0.1" if dry_run else ips.allocate()
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _decode_secret_data(obj):
    """Secret ``data`` must be base64 (a decode error, 400); ``stringData`` is merged into ``data``."""
    for value in (obj.get("data") or {}).values():
        try:
            if not isinstance(value, str):
                raise binascii.Error("not a string")
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            position = next((i for i, c in enumerate(str(value)) if not (c.isalnum() or c in "+/=")), len(str(value)) - 1)
            raise errors.BadRequest('Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte %d'
                                    % max(position, 0)) from exc
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.get("data") or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        obj["data"] = data


def _crd_status(obj, current_status):
    spec = obj.get("spec") or {}
    names = dict(spec.get("names") or {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    status = copy.deepcopy(current_status) if current_status else {}
    now = now_rfc3339()
    status["acceptedNames"] = names
    if not status.get("conditions"):
        status["conditions"] = [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ]
    stored = list(status.get("storedVersions") or [])
    for version in spec.get("versions") or []:
        if version.get("storage") and version.get("name") not in stored:
            stored.append(version["name"])
    status["storedVersions"] = stored
    return status


def _default_crd(obj):
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})


def _default_storage_class(store, request):
    """The DefaultStorageClass admission plugin: unset storageClassName gets the newest default class."""
    spec = request.obj.setdefault("spec", {})
    if "storageClassName" in spec:
        return
    classes, _rv = store.list("storageclasses")
    defaults = [c for c in classes if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if defaults:
        newest = max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp", ""), c["metadata"]["name"]))
        spec["storageClassName"] = newest["metadata"]["name"]


def make_mutator(store):
    ips = _ServiceIPs()

    def builtin_mutator(request):
        obj, rtype = request.obj, request.rtype
        if obj is None or getattr(rtype, "is_crd", False) or request.subresource == "status":
            return
        kind = rtype.kind
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
        if kind == "Secret":
            _decode_secret_data(obj)
            obj.setdefault("type", "Opaque")
        elif kind == "Namespace":
            obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        elif kind == "PersistentVolumeClaim":
            obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
            if request.operation == "CREATE":
                _default_storage_class(store, request)
        elif kind == "PersistentVolume" and spec is not None:
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")
        elif kind == "StorageClass":
            obj.setdefault("reclaimPolicy", "Delete")
            obj.setdefault("volumeBindingMode", "Immediate")
        elif kind == "Service" and spec is not None:
            _default_service(spec, ips, request.dry_run)
        elif kind == "Pod":
            default_pod_spec(spec)
            if spec is not None:
                spec.setdefault("enableServiceLinks", True)
        elif kind in _WORKLOADS and spec is not None:
            _default_workload(kind, spec)
        elif kind == "Job" and spec is not None:
            spec.setdefault("parallelism", 1)
            spec.setdefault("completions", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            _default_template(spec)
        elif kind == "CustomResourceDefinition":
            _default_crd(obj)
            obj["status"] = _crd_status(obj, (request.old or {}).get("status"))

    return builtin_mutator


# ---- validation ---------------------------------------------------------------
def _qualified_name_errors(path, value):
    """IsQualifiedName: optional DNS-subdomain prefix and a name part of at most 63 characters."""
    found = []
    prefix, _sep, name = value.rpartition("/")
    if _sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        found.append((path, "Invalid value: %s: prefix part %s" % (_quoted(value), _DNS_SUBDOMAIN_MSG), "FieldValueInvalid"))
    if not name:
        found.append((path, "Invalid value: %s: name part must be non-empty" % _quoted(value), "FieldValueInvalid"))
    elif len(name) > 63:
        found.append((path, "Invalid value: %s: name part must be no more than 63 characters" % _quoted(value), "FieldValueInvalid"))
    elif not _NAME_PART.match(name):
        found.append((path, "Invalid value: %s: %s" % (_quoted(value), _NAME_PART_MSG), "FieldValueInvalid"))
    return found


def validate_metadata(obj):
    meta = obj.get("metadata") or {}
    found = []
    for key, value in (meta.get("labels") or {}).items():
        found.extend(_qualified_name_errors("metadata.labels", key))
        value = "" if value is None else str(value)
        if len(value) > 63:
            found.append(("metadata.labels", "Invalid value: %s: must be no more than 63 characters" % _quoted(value), "FieldValueInvalid"))
        elif not _LABEL_VALUE.match(value):
            found.append(("metadata.labels", "Invalid value: %s: %s" % (_quoted(value), _LABEL_VALUE_MSG), "FieldValueInvalid"))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        found.extend(_qualified_name_errors("metadata.annotations", key.lower()))
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        found.append(("metadata.annotations", "Too long: may not be more than 262144 bytes", "FieldValueTooLong"))
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        found.extend(_qualified_name_errors("metadata.finalizers[%d]" % index, str(finalizer)))
    controllers = 0
    for ref in meta.get("ownerReferences") or []:
        for key, text in (("apiVersion", "version must not be empty"), ("kind", "kind must not be empty"),
                          ("name", "name must not be empty"), ("uid", "uid must not be empty")):
            if not ref.get(key):
                found.append(("metadata.ownerReferences.%s" % key, 'Invalid value: "": %s' % text, "FieldValueInvalid"))
        controllers += 1 if ref.get("controller") else 0
    if controllers > 1:
        found.append(("metadata.ownerReferences", "Invalid value: []: Only one reference can have Controller set to true", "FieldValueInvalid"))
    return found


def _validate_namespace(obj):
    name = obj.get("metadata", {}).get("name", "")
    if name and (len(name) > 63 or not _DNS_LABEL.match(name)):
        return [("metadata.name", "Invalid value: %s: %s" % (_quoted(name), _DNS_LABEL_MSG), "FieldValueInvalid")]
    return []


def _validate_access_modes(modes, path):
    if not modes:
        return [(path, "Required value: at least 1 access mode is required", "FieldValueRequired")]
    return [(path, "Unsupported value: %s: supported values: %s" % (_quoted(m), ", ".join(_quoted(a) for a in _ACCESS_MODES)),
             "FieldValueNotSupported") for m in modes if m not in _ACCESS_MODES]


def _validate_pvc_spec(spec):
    found = _validate_access_modes(spec.get("accessModes"), "spec.accessModes")
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        found.append(("spec.resources[storage]", "Required value", "FieldValueRequired"))
    else:
        amount = _quantity(storage)
        if amount is None:
            found.append(("spec.resources.requests[storage]", "Invalid value: %s: quantities must match the regular expression "
                          "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" % _quoted(storage), "FieldValueInvalid"))
        elif amount <= 0:
            found.append(("spec.resources[storage]", "Invalid value: %s: must be greater than zero" % _quoted(storage), "FieldValueInvalid"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        found.append(("spec.volumeMode", 'Unsupported value: %s: supported values: "Block", "Filesystem"' % _quoted(mode), "FieldValueNotSupported"))
    return found


def _validate_pvc_update(store, obj, old, name):
    new_spec, old_spec = copy.deepcopy(obj.get("spec") or {}), copy.deepcopy(old.get("spec") or {})
    if not old_spec.get("volumeName") and "volumeName" in new_spec:
        old_spec["volumeName"] = new_spec["volumeName"]
    if "storageClassName" not in old_spec and "storageClassName" in new_spec:
        old_spec["storageClassName"] = new_spec["storageClassName"]
    new_requests = (new_spec.get("resources") or {}).get("requests") or {}
    old_requests = (old_spec.get("resources") or {}).get("requests") or {}
    bound = (old.get("status") or {}).get("phase") == "Bound"
    for spec in (new_spec, old_spec):
        spec.get("resources", {}).pop("requests", None)
        spec.pop("volumeAttributesClassName", None)
    if new_spec != old_spec or (new_requests != old_requests and not bound):
        return [("spec", "Forbidden: " + _PVC_IMMUTABLE, "FieldValueForbidden")]
    if new_requests.get("storage") != old_requests.get("storage"):
        new_size = _quantity(new_requests.get("storage"))
        capacity = _quantity(((old.get("status") or {}).get("capacity") or {}).get("storage") or old_requests.get("storage"))
        if new_size is not None and capacity is not None and new_size < capacity:
            return [("spec.resources.requests.storage", "Forbidden: field can not be less than status.capacity", "FieldValueForbidden")]
        class_name = obj.get("spec", {}).get("storageClassName")
        storage_class = store.try_get("storageclasses", None, class_name) if class_name else None
        if not (storage_class or {}).get("allowVolumeExpansion"):
            raise errors.Forbidden('persistentvolumeclaims "%s" is forbidden: only dynamically provisioned pvc can be resized and '
                                   "the storageclass that provisions the pvc must support resize" % name)
    return []


def _validate_pv(spec):
    found = []
    capacity = spec.get("capacity")
    if not capacity:
        found.append(("spec.capacity", "Required value", "FieldValueRequired"))
    elif "storage" not in capacity:
        found.append(("spec.capacity", 'Unsupported value: %s: supported values: "storage"' % _quoted(next(iter(capacity))),
                      "FieldValueNotSupported"))
    elif _quantity(capacity["storage"]) is None:
        found.append(("spec.capacity[storage]", "Invalid value: %s: quantities must match the regular expression "
                      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'" % _quoted(capacity["storage"]), "FieldValueInvalid"))
    if not spec.get("accessModes"):
        found.append(("spec.accessModes", "Required value", "FieldValueRequired"))
    else:
        found.extend(_validate_access_modes(spec["accessModes"], "spec.accessModes"))
    sources = [s for s in _PV_SOURCES if spec.get(s) is not None]
    if not sources:
        found.append(("spec", "Required value: must specify a volume type", "FieldValueRequired"))
    for extra in sources[1:]:
        found.append(("spec.%s" % extra, "Forbidden: may not specify more than 1 volume type", "FieldValueForbidden"))
    csi = spec.get("csi")
    if isinstance(csi, dict):
        for key in ("driver", "volumeHandle"):
            if not csi.get(key):
                found.append(("spec.csi.%s" % key, "Required value", "FieldValueRequired"))
    if spec.get("local") is not None and not spec.get("nodeAffinity"):
        found.append(("spec.nodeAffinity", "Required value: Local volume requires node affinity", "FieldValueRequired"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy not in (None, "Delete", "Recycle", "Retain"):
        found.append(("spec.persistentVolumeReclaimPolicy", 'Unsupported value: %s: supported values: "Delete", "Recycle", "Retain"'
                      % _quoted(policy), "FieldValueNotSupported"))
    return found


def _validate_pv_update(obj, old):
    found = []
    new_spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
    if {s: new_spec.get(s) for s in _PV_SOURCES} != {s: old_spec.get(s) for s in _PV_SOURCES}:
        found.append(("spec.persistentvolumesource", "Forbidden: spec.persistentvolumesource is immutable after creation",
                      "FieldValueForbidden"))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
        found.append(("volumeMode", "Invalid value: %s: field is immutable" % _quoted(new_spec.get("volumeMode")), "FieldValueInvalid"))
    if old_spec.get("nodeAffinity") is not None and new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
        found.append(("nodeAffinity", "Invalid value: {}: field is immutable", "FieldValueInvalid"))
    return found


def _validate_pod_spec(spec, path, restart_always=False):
    found = []
    if not isinstance(spec, dict):
        return [(path, "Required value", "FieldValueRequired")]
    containers = spec.get("containers")
    if not containers:
        found.append(("%s.containers" % path, "Required value", "FieldValueRequired"))
    names = set()
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            cpath = "%s.%s[%d]" % (path, key, index)
            name = (container or {}).get("name")
            if not name:
                found.append(("%s.name" % cpath, "Required value", "FieldValueRequired"))
            elif not _DNS_LABEL.match(name) or len(name) > 63:
                found.append(("%s.name" % cpath, "Invalid value: %s: %s" % (_quoted(name), _DNS_LABEL_MSG), "FieldValueInvalid"))
            elif name in names:
                found.append(("%s.name" % cpath, "Duplicate value: %s" % _quoted(name), "FieldValueDuplicate"))
            names.add(name)
            if not (container or {}).get("image"):
                found.append(("%s.image" % cpath, "Required value", "FieldValueRequired"))
    policy = spec.get("restartPolicy")
    if restart_always and policy not in (None, "Always"):
        found.append(("%s.restartPolicy" % path, 'Unsupported value: %s: supported values: "Always"' % _quoted(policy), "FieldValueNotSupported"))
    return found


def _validate_workload(kind, obj, old):
    found = []
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels")
    if not selector:
        found.append(("spec.selector", "Required value", "FieldValueRequired"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        found.append(("spec.selector", "Invalid value: %s: empty selector is invalid for deployment" % go_label_selector(selector),
                      "FieldValueInvalid"))
    elif not match_labels(selector_from_match_labels(selector), template_labels or {}) or not template_labels:
        found.append(("spec.template.metadata.labels", "Invalid value: %s: `selector` does not match template `labels`"
                      % go_string_map(template_labels), "FieldValueInvalid"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        found.append(("spec.replicas", "Invalid value: %d: must be greater than or equal to 0" % replicas, "FieldValueInvalid"))
    found.extend(_validate_pod_spec(template.get("spec"), "spec.template.spec", restart_always=True))
    if old is not None:
        old_spec = old.get("spec") or {}
        if kind == "StatefulSet":
            rest_new = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
            rest_old = {k: v for k, v in old_spec.items() if k not in _STS_MUTABLE}
            if rest_new != rest_old:
                found.append(("spec", "Forbidden: " + _STS_FORBIDDEN, "FieldValueForbidden"))
        elif selector != old_spec.get("selector"):
            found.append(("spec.selector", "Invalid value: %s: field is immutable" % go_label_selector(selector), "FieldValueInvalid"))
    return found


def _validate_config_data(obj, old, kind):
    found = []
    for section in ("data", "binaryData"):
        for key in (obj.get(section) or {}):
            if not _CONFIG_KEY.match(key) or len(key) > 253:
                found.append(("%s[%s]" % (section, key), "Invalid value: %s: a valid config key must consist of alphanumeric characters, "
                              "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                              "'[-._a-zA-Z0-9]+')" % _quoted(key), "FieldValueInvalid"))
    if kind == "Secret":
        size = sum(len(base64.b64decode(v)) for v in (obj.get("data") or {}).values() if isinstance(v, str))
        if size > 1024 * 1024:
            found.append(("data", "Too long: may not be more than 1048576 bytes", "FieldValueTooLong"))
    if old is not None and old.get("immutable"):
        for section in ("data", "binaryData", "immutable"):
            if obj.get(section) != old.get(section):
                found.append((section, "Forbidden: field is immutable when `immutable` is set", "FieldValueForbidden"))
    if kind == "Secret" and old is not None and obj.get("type") != old.get("type"):
        found.append(("type", "Invalid value: %s: field is immutable" % _quoted(obj.get("type")), "FieldValueInvalid"))
    return found


def _validate_storage_class(obj, old):
    if old is None:
        return [] if obj.get("provisioner") else [("provisioner", "Required value", "FieldValueRequired")]
    found = []
    if obj.get("parameters") != old.get("parameters"):
        found.append(("parameters", "Forbidden: updates to parameters are forbidden.", "FieldValueForbidden"))
    if obj.get("provisioner") != old.get("provisioner"):
        found.append(("provisioner", "Forbidden: updates to provisioner are forbidden.", "FieldValueForbidden"))
    if obj.get("reclaimPolicy") != old.get("reclaimPolicy"):
        found.append(("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden.", "FieldValueForbidden"))
    if obj.get("volumeBindingMode") != old.get("volumeBindingMode"):
        found.append(("volumeBindingMode", "Invalid value: %s: field is immutable" % _quoted(obj.get("volumeBindingMode")), "FieldValueInvalid"))
    return found


def _validate_crd(obj, old):
    found = []
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    name = obj.get("metadata", {}).get("name", "")
    if not spec.get("group"):
        found.append(("spec.group", "Required value", "FieldValueRequired"))
    for key in ("plural", "kind"):
        if not names.get(key):
            found.append(("spec.names.%s" % key, "Required value", "FieldValueRequired"))
    if spec.get("group") and names.get("plural") and name != "%s.%s" % (names["plural"], spec["group"]):
        found.append(("metadata.name", 'Invalid value: %s: must be spec.names.plural+"."+spec.group' % _quoted(name), "FieldValueInvalid"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        found.append(("spec.scope", 'Unsupported value: %s: supported values: "Cluster", "Namespaced"' % _quoted(spec.get("scope")),
                      "FieldValueNotSupported"))
    versions = spec.get("versions") or []
    if not versions:
        found.append(("spec.versions", "Invalid value: null: must have exactly one version marked as storage version", "FieldValueInvalid"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        found.append(("spec.versions", "Invalid value: []: must have exactly one version marked as storage version", "FieldValueInvalid"))
    if old is not None and spec.get("group") != (old.get("spec") or {}).get("group"):
        found.append(("spec.group", "Invalid value: %s: field is immutable" % _quoted(spec.get("group")), "FieldValueInvalid"))
    return found


def make_validator(store):
    def builtin_validator(request):
        obj, rtype = request.obj, request.rtype
        if obj is None:
            return
        found = validate_metadata(obj)
        old = request.old if request.operation == "UPDATE" else None
        kind = None if getattr(rtype, "is_crd", False) or request.subresource == "status" else rtype.kind
        name = obj.get("metadata", {}).get("name", "")
        spec = obj.get("spec") or {}
        if kind == "Namespace":
            found.extend(_validate_namespace(obj))
        elif kind == "PersistentVolumeClaim":
            found.extend(_validate_pvc_spec(spec) if old is None else _validate_pvc_update(store, obj, old, name))
        elif kind == "PersistentVolume":
            found.extend(_validate_pv(spec))
            if old is not None:
                found.extend(_validate_pv_update(obj, old))
        elif kind in _WORKLOADS:
            found.extend(_validate_workload(kind, obj, old))
        elif kind == "Pod":
            found.extend(_validate_pod_spec(obj.get("spec"), "spec"))
        elif kind in ("Secret", "ConfigMap"):
            found.extend(_validate_config_data(obj, old, kind))
        elif kind == "StorageClass":
            found.extend(_validate_storage_class(obj, old))
        elif kind == "CustomResourceDefinition":
            found.extend(_validate_crd(obj, old))
        if found:
            raise errors.Invalid(rtype.kind, name, found, group=rtype.group)

    return builtin_validator


INITIAL_STATUS = {
    ("", "persistentvolumeclaims"): {"phase": "Pending"},
    ("", "persistentvolumes"): {"phase": "Pending"},
    ("", "namespaces"): {"phase": "Active"},
    ("", "pods"): {"phase": "Pending"},
}


def register(store):
    """Install defaulting (mutator), validation (validator) and initial statuses of built-in kinds."""
    store.add_mutator(make_mutator(store))
    store.add_validator(make_validator(store))
    for key, status in INITIAL_STATUS.items():
        store.initial_status.setdefault(key, copy.deepcopy(status))
