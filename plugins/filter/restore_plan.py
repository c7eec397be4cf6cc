# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: restore_plan
short_description: Plan a full-cluster restore from the bucket inventory, before anything changes
version_added: 1.0.0
author:
  - homelab.longhorn_dr contributors (@homelab)
description:
  - The plan behind the P(homelab.longhorn_dr.restore_cluster#role) role. For each PVC to bring back it names the
    backup to use (name, time, age, size), the volume, PV and PVC names, and any conflict with what the cluster
    already holds.
  - Volumes and their original PVCs come from the bucket (the C(KubernetesStatus) label in each C(volume.cfg)), so
    the plan needs no Longhorn resources in the cluster. The cluster-state manifest fills in PVCs the bucket does
    not know, and every PVC it lists is expected, so that a PVC without a backup is reported as missing rather
    than silently left out.
  - A PVC that exists and is bound to the planned volume is C(done); one bound to anything else is a conflict. A
    Longhorn volume of the planned name that was not restored from the planned backup is a conflict too.
positional: _input
options:
  _input:
    description: The registered result of M(homelab.longhorn_dr.minio_bucket_check) on the backup bucket.
    type: dict
    required: true
  manifest:
    description: The parsed C(manifest.json) of a cluster-state export, or V(null).
    type: dict
  pvcs:
    description: The cluster's PersistentVolumeClaims (the C(resources) of M(kubernetes.core.k8s_info)).
    type: list
    elements: dict
    default: []
  volumes:
    description: The cluster's Longhorn Volumes (the C(resources) of M(kubernetes.core.k8s_info)).
    type: list
    elements: dict
    default: []
  namespaces:
    description: Only PVCs in these namespaces. Empty means all.
    type: list
    elements: str
    default: []
  claims:
    description: Only these PVCs, as C(namespace/name). Empty means all.
    type: list
    elements: str
    default: []
  method:
    description:
      - C(volumes) restores each volume from its newest backup; C(system_backup) restores the Longhorn system from a
        system backup in the bucket (O(system_backup), else the newest one).
      - C(auto) picks C(system_backup) when nothing is selected and a system backup newer than every planned volume
        backup exists (so that it restores the same data), else C(volumes).
    type: str
    choices: [auto, volumes, system_backup]
    default: volumes
  system_backup:
    description: Name of the system backup for C(system_backup); empty picks the newest one in the bucket.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Plan the restore
  ansible.builtin.set_fact:
    plan: >-
      {{ bucket_result | homelab.longhorn_dr.restore_plan(manifest=manifest, pvcs=pvc_info.resources,
         volumes=volume_info.resources, namespaces=['apps']) }}
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    entries:
      description:
        - One per PVC, sorted by namespace and name, each with C(pvc_namespace), C(pvc_name), C(volume), C(pv_name),
          C(backup) (C(name), C(created_at), C(age_seconds), C(size)), C(source) (C(bucket) or C(manifest)),
          C(action) (C(restore), C(done) or C(conflict)) and C(conflict) (the reason, or V(null)).
      type: list
      elements: dict
    missing:
      description: PVCs the manifest expects (or the selection names) that have no complete backup in the bucket, as C(namespace/name (why)).
      type: list
      elements: str
    unmapped:
      description: Volumes in the bucket whose original PVC is unknown; they are not restored.
      type: list
      elements: str
    conflicts:
      description: The entries in conflict, as C(namespace/name) followed by the reason.
      type: list
      elements: str
    volumes:
      description: The volume names to restore (action C(restore) or C(done)).
      type: list
      elements: str
    backups:
      description: The backup names the restore needs in the cluster.
      type: list
      elements: str
    method:
      description: The method to use, C(volumes) or C(system_backup).
      type: str
    method_reason:
      description: Why that method, in words.
      type: str
    system_backup:
      description: The system backup to restore from with C(system_backup), else V(null).
      type: str
    ok:
      description: Whether the restore can go ahead (nothing missing, no conflict, at least one entry, a system backup when needed).
      type: bool
    problems:
      description: Why the restore cannot go ahead, one line each.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

RESTORED_FROM_ANNOTATION = "longhorn-dr.homelab/restored-from"
SYSTEM_RESTORED_BACKUP_ANNOTATION = "longhorn.io/last-system-restored-backup"


def _query(url):
    from urllib.parse import parse_qsl, urlsplit
    query = dict(parse_qsl(urlsplit(url or "").query))
    return query.get("backup", ""), query.get("volume", "")


def _volume_origin(volume):
    annotations = (volume.get("metadata") or {}).get("annotations") or {}
    for url in (annotations.get(RESTORED_FROM_ANNOTATION), annotations.get(SYSTEM_RESTORED_BACKUP_ANNOTATION),
                (volume.get("spec") or {}).get("fromBackup")):
        if url:
            return _query(url)
    return None


def _selected(namespace, name, namespaces, claims):
    if namespaces and namespace not in namespaces:
        return False
    if claims and "%s/%s" % (namespace, name) not in claims:
        return False
    return True


def choose_method(bucket, chosen, method, system_backup, selected):
    """(method, system backup name or None, reason, problem or None)."""
    usable = sorted((b for b in bucket.get("system_backups") or [] if b.get("checksum") != "missing_zip" and b.get("created")),
                    key=lambda b: (b["created"], b["name"]))
    if method == "volumes":
        return "volumes", None, "chosen", None
    if method == "system_backup":
        if system_backup:
            found = [b for b in usable if b["name"] == system_backup]
            if not found:
                return "system_backup", system_backup, "chosen", "system backup %s is not in the bucket (found: %s)" % (
                    system_backup, ", ".join(b["name"] for b in usable) or "none")
            return "system_backup", system_backup, "chosen", None
        if not usable:
            return "system_backup", None, "chosen", "no system backup in the bucket"
        return "system_backup", usable[-1]["name"], "chosen, the newest system backup", None
    if selected:
        return "volumes", None, "auto: a selection restores only some PVCs, and a system restore restores everything", None
    newest_backup = max((e["backup"]["created_at"] or "" for e in chosen), default="")
    fresh = [b for b in usable if b["created"] >= newest_backup]
    if not usable:
        return "volumes", None, "auto: no system backup in the bucket", None
    if not fresh:
        return "volumes", None, "auto: the newest system backup %s is older than the newest volume backup" % usable[-1]["name"], None
    return "system_backup", fresh[-1]["name"], "auto: system backup %s is newer than every volume backup" % fresh[-1]["name"], None


def restore_plan(bucket, manifest=None, pvcs=None, volumes=None, namespaces=None, claims=None, method="volumes", system_backup=""):
    if not isinstance(bucket, dict) or bucket.get("failed") or not (bucket.get("access") or {}).get("readable"):
        reason = (bucket or {}).get("msg") or ((bucket or {}).get("access") or {}).get("error") or "no bucket inventory"
        raise AnsibleFilterError("restore_plan needs a readable bucket inventory: %s" % reason)
    namespaces, claims = list(namespaces or []), list(claims or [])
    for claim in claims:
        if claim.count("/") != 1 or not all(claim.split("/")):
            raise AnsibleFilterError("claims must be namespace/name, got %r" % claim)
    manifest_entries = {}
    if manifest:
        if manifest.get("format") != "homelab.longhorn_dr/cluster-state/v1":
            raise AnsibleFilterError("manifest is not a cluster-state manifest (format %r)" % manifest.get("format"))
        manifest_entries = {e["volume"]: e for e in manifest.get("volumes") or [] if e.get("volume")}
    by_claim = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pvcs or []}
    existing_volumes = {v["metadata"]["name"]: v for v in volumes or []}

    entries, unmapped, seen = [], [], set()
    for item in sorted(bucket.get("volumes") or [], key=lambda v: v["name"]):
        name = item["name"]
        known = manifest_entries.get(name) or {}
        namespace = item.get("pvc_namespace") or known.get("pvc_namespace")
        claim = item.get("pvc_name") or known.get("pvc_name")
        if not (namespace and claim):
            unmapped.append(name)
            continue
        if not _selected(namespace, claim, namespaces, claims) or not item.get("last_backup_name"):
            continue
        seen.add((namespace, claim))
        entry = {
            "pvc_namespace": namespace, "pvc_name": claim, "volume": name, "pv_name": known.get("pv_name") or name,
            "backup": {"name": item["last_backup_name"], "created_at": item.get("last_backup_at"),
                       "age_seconds": item.get("last_backup_age"), "size": item.get("size")},
            "source": "bucket" if item.get("pvc_name") else "manifest", "action": "restore", "conflict": None,
        }
        pvc = by_claim.get((namespace, claim))
        volume = existing_volumes.get(name)
        if pvc is not None:
            bound = (pvc.get("spec") or {}).get("volumeName")
            if bound == entry["pv_name"]:
                entry["action"] = "done"
            else:
                entry.update(action="conflict", conflict="PVC %s/%s exists and is %s" % (
                    namespace, claim, "bound to PV %s" % bound if bound else "waiting for a new volume"))
        if entry["action"] == "restore" and volume is not None:
            origin = _volume_origin(volume)
            if origin is None or origin[1] != name:
                entry.update(action="conflict", conflict="Longhorn volume %s exists and was not restored from its backups" % name)
            elif origin[0] != entry["backup"]["name"]:
                entry.update(action="conflict", conflict="Longhorn volume %s exists, restored from backup %s, not from the newest %s"
                             % (name, origin[0], entry["backup"]["name"]))
        entries.append(entry)

    # Every PVC the export or the selection names must be restorable: never restore a silent subset.
    bucket_names = {item["name"]: item for item in bucket.get("volumes") or []}
    missing = []
    for name, known in sorted(manifest_entries.items()):
        key = (known.get("pvc_namespace"), known.get("pvc_name"))
        if not all(key) or key in seen or not _selected(key[0], key[1], namespaces, claims):
            continue
        why = "no volume %s in the bucket" % name if name not in bucket_names else "volume %s has no complete backup" % name
        missing.append("%s/%s (%s)" % (key[0], key[1], why))
    for claim in claims:
        namespace, name = claim.split("/")
        if (namespace, name) not in seen and not any(m.startswith(claim + " ") for m in missing):
            missing.append("%s (no backup in the bucket names this PVC)" % claim)

    entries.sort(key=lambda e: (e["pvc_namespace"], e["pvc_name"]))
    conflicts = ["%s/%s: %s" % (e["pvc_namespace"], e["pvc_name"], e["conflict"]) for e in entries if e["action"] == "conflict"]
    chosen = [e for e in entries if e["action"] in ("restore", "done")]
    if method not in ("auto", "volumes", "system_backup"):
        raise AnsibleFilterError("method must be auto, volumes or system_backup, got %r" % method)
    resolved, system_backup_name, reason, method_problem = choose_method(bucket, chosen, method, system_backup, bool(namespaces or claims))
    problems = []
    # A selected namespace that no backup and no export entry knows is a typo or the wrong bucket: say so, by name.
    known_namespaces = sorted({item.get("pvc_namespace") for item in bucket.get("volumes") or [] if item.get("pvc_namespace")}
                              | {e.get("pvc_namespace") for e in manifest_entries.values() if e.get("pvc_namespace")})
    for namespace in sorted(set(namespaces) - set(known_namespaces)):
        problems.append("namespaces: unknown namespace %r: no backup in the bucket and no PVC of the cluster-state export is "
                        "in it (known: %s)" % (namespace, ", ".join(known_namespaces) or "none"))
    if not entries:
        problems.append("nothing to restore: no backup in the bucket names a PVC%s" % (" in the selection" if namespaces or claims else ""))
    problems += ["missing backup: %s" % m for m in sorted(missing)]
    problems += ["conflict: %s" % c for c in conflicts]
    if method_problem:
        problems.append(method_problem)
    return {
        "entries": entries,
        "missing": sorted(missing),
        "unmapped": unmapped,
        "conflicts": conflicts,
        "volumes": sorted(e["volume"] for e in chosen),
        "backups": sorted(e["backup"]["name"] for e in chosen),
        "method": resolved,
        "method_reason": reason,
        "system_backup": system_backup_name,
        "problems": problems,
        "ok": not problems,
    }


class FilterModule:
    def filters(self):
        return {"restore_plan": restore_plan}
