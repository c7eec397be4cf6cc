# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The resource types the lab API serves: built-in kinds plus whatever CRDs are installed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


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
    verbs: tuple = ALL_VERBS
    categories: tuple = ()
    # openAPIV3Schema of a CRD version; None for built-ins (they are not schema-checked here).
    schema: dict | None = field(default=None, compare=False, hash=False)
    is_crd: bool = False

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def key(self):
        """Identity of the stored collection, independent of the served version."""
        return (self.group, self.plural)

    @property
    def has_status(self):
        return "status" in self.subresources

    def singular_name(self):
        return self.singular or self.kind.lower()


def _core(kind, plural, namespaced=True, short=(), sub=(), verbs=ALL_VERBS):
    return ResourceType("", "v1", kind, plural, namespaced, short_names=short, subresources=sub, verbs=verbs)


BUILTIN_TYPES = (
    _core("Namespace", "namespaces", namespaced=False, short=("ns",), sub=("status",)),
    _core("Pod", "pods", short=("po",), sub=("status", "exec", "log")),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), sub=("status",)),
    _core("PersistentVolume", "persistentvolumes", namespaced=False, short=("pv",), sub=("status",)),
    _core("Secret", "secrets"),
    _core("ConfigMap", "configmaps", short=("cm",)),
    _core("Service", "services", short=("svc",), sub=("status",)),
    _core("ServiceAccount", "serviceaccounts", short=("sa",)),
    _core("Event", "events", short=("ev",)),
    _core("Node", "nodes", namespaced=False, short=("no",), sub=("status",)),
    _core("Endpoints", "endpoints", short=("ep",)),
    ResourceType("apps", "v1", "Deployment", "deployments", True, short_names=("deploy",), subresources=("status", "scale")),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", True, short_names=("sts",), subresources=("status", "scale")),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", True, short_names=("ds",), subresources=("status",)),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, short_names=("rs",), subresources=("status", "scale")),
    ResourceType("batch", "v1", "Job", "jobs", True, subresources=("status",)),
    ResourceType("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short_names=("sc",)),
    ResourceType("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, subresources=("status",)),
    ResourceType("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
                 short_names=("crd", "crds"), subresources=("status",)),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
)


class Registry:
    """Thread-safe lookup of resource types by plural, kind, short name."""

    def __init__(self, types=BUILTIN_TYPES):
        self._lock = threading.RLock()
        self._types = {}
        for rtype in types:
            self.register(rtype)

    def register(self, rtype):
        with self._lock:
            self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def unregister_group_plural(self, group, plural):
        with self._lock:
            for key in [k for k in self._types if k[0] == group and k[2] == plural]:
                del self._types[key]

    def get(self, group, version, plural):
        with self._lock:
            return self._types.get((group, version, plural))

    def by_kind(self, api_version, kind):
        group, _sep, version = api_version.rpartition("/")
        with self._lock:
            for rtype in self._types.values():
                if rtype.group == group and rtype.version == version and rtype.kind == kind:
                    return rtype
        return None

    def by_plural(self, plural, group=None):
        """First served version of ``plural`` (optionally within ``group``); also accepts short names."""
        with self._lock:
            for rtype in self._types.values():
                if group is not None and rtype.group != group:
                    continue
                if plural in (rtype.plural, rtype.singular_name(), rtype.kind.lower()) or plural in rtype.short_names:
                    return rtype
        return None

    def all(self):
        with self._lock:
            return list(self._types.values())

    def group_versions(self):
        """``{group: [versions]}`` in registration order."""
        result = {}
        for rtype in self.all():
            versions = result.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return result

    def register_crd(self, crd):
        """Serve every ``served`` version of a CustomResourceDefinition object."""
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        group = spec["group"]
        self.unregister_group_plural(group, names["plural"])
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            subresources = tuple(sorted((version.get("subresources") or {}).keys()))
            self.register(ResourceType(
                group=group,
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames", ())),
                subresources=subresources,
                categories=tuple(names.get("categories", ())),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                is_crd=True,
            ))

    def unregister_crd(self, crd):
        spec = crd.get("spec", {})
        self.unregister_group_plural(spec.get("group"), spec.get("names", {}).get("plural"))
