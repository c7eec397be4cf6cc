#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: longhorn_pv_from_volume
short_description: Create PersistentVolumes and claims for Longhorn volumes under their original names
version_added: 1.0.0
description:
  - For each chosen Longhorn volume, creates a PersistentVolume shaped as Longhorn's own C(pvCreate) makes it
    (CSI driver C(driver.longhorn.io), C(volumeHandle) = the volume name, capacity and access mode from the volume,
    reclaim policy C(Retain)) and a PersistentVolumeClaim with the original namespace and name, then waits until
    the claim is C(Bound).
  - The original claim is taken, in this order, from the volume's C(status.kubernetesStatus) (which a restore copies
    from the backup), from the cluster-state manifest that M(homelab.longhorn_dr.longhorn_cluster_state) exported,
    or from O(mapping).
  - A claim bound to another volume, or a PV of the same name for another volume, is a conflict that is reported,
    never changed, unless O(replace_empty=true) applies.
  - Volumes that are still restoring, or whose restore failed, are not touched.
  - A volume that M(homelab.longhorn_dr.longhorn_volume_restore) made to retry a failed restore (annotation
    C(longhorn-dr.homelab/retry-of)) stands in for the volume it retries. Its PV gets that volume's name (or the
    exported PV name), and the manifest and O(mapping) are looked up under that name too, so the claim and PV come
    back under their original names.
author:
  - homelab.longhorn_dr contributors (@homelab)
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - homelab.longhorn_dr._attributes
  - homelab.longhorn_dr._attributes.ACTIONGROUP_LONGHORN
attributes:
  check_mode:
    support: full
    details:
      - PVs, claims and namespaces are created as server-side dry runs; nothing is stored.
  diff_mode:
    support: full
  idempotent:
    support: full
    details:
      - A claim already bound to the volume's PV is left as it is.
options:
  volumes:
    description:
      - Names of the Longhorn volumes.
      - Without it, every Longhorn volume that has no PV yet.
    type: list
    elements: str
  cluster_state_manifest:
    description:
      - Path of a C(manifest.json) written by M(homelab.longhorn_dr.longhorn_cluster_state), on the host that runs
        the module. Used for volumes whose C(kubernetesStatus) does not name a claim, and for the original StorageClass.
    type: path
  mapping:
    description:
      - Explicit claims, for volumes that neither C(kubernetesStatus) nor the manifest map.
    type: list
    elements: dict
    suboptions:
      volume:
        description: Longhorn volume name.
        type: str
        required: true
      namespace:
        description: Namespace of the claim.
        type: str
        required: true
      pvc_name:
        description: Name of the claim.
        type: str
        required: true
      storage_class:
        description: StorageClass name for the PV and claim.
        type: str
  storage_class:
    description:
      - StorageClass name when the original one is unknown. Static binding needs no StorageClass object.
    type: str
    default: longhorn-static
  fs_type:
    description: Filesystem of the PV.
    type: str
    default: ext4
  create_namespaces:
    description: Create missing claim namespaces. Without it, a missing namespace fails that volume.
    type: bool
    default: false
  replace_empty:
    description:
      - For the case where GitOps redeployed the apps before the restore, so that dynamic provisioning bound the
        original claim names to fresh, empty volumes.
      - Scales the workloads that mount such a claim to zero and waits until the fresh volume is detached. Then, only
        when that volume was created after the restored backup was taken and holds at most O(replace_empty_max_bytes)
        of data, sets its PV to C(Retain) (so nothing is deleted), deletes the claim and its PV object, creates the
        claim again on the restored volume, and scales the workloads back. The fresh volume is kept and reported.
      - When a check fails, the claim is left as it is, the workloads are scaled back, and the volume fails with the reason.
    type: bool
    default: false
  replace_empty_max_bytes:
    description:
      - The most data (Longhorn's C(status.actualSize), read once the volume is detached) a fresh volume may hold and
        still count as empty. A formatted, unused filesystem takes some space; raise this to allow for it.
    type: int
    default: 0
  namespace:
    description: Namespace of the Longhorn custom resources.
    type: str
    default: longhorn-system
  wait:
    description: Wait until every claim is C(Bound).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between polls.
    type: int
    default: 2
seealso:
  - module: homelab.longhorn_dr.longhorn_volume_restore
  - name: Longhorn, restore volumes for Kubernetes StatefulSets
    description: Longhorn's guide, which ends with creating PVs and PVCs with their previous names by hand.
    link: https://longhorn.io/docs/1.10.2/snapshots-and-backups/backup-and-restore/restore-statefulset/
"""

EXAMPLES = r"""
- name: Give every restored volume its PV and its original claim back
  homelab.longhorn_dr.longhorn_pv_from_volume:
    kubeconfig: ~/.kube/config
    create_namespaces: true
  register: claims

- name: Use the exported cluster state for volumes whose backups lack the KubernetesStatus label
  homelab.longhorn_dr.longhorn_pv_from_volume:
    volumes: [pvc-0123abcd, pvc-4567ef01]
    cluster_state_manifest: ./cluster-state/manifest.json

- name: Map a volume by hand
  homelab.longhorn_dr.longhorn_pv_from_volume:
    volumes: [restored-db]
    mapping:
      - volume: restored-db
        namespace: db
        pvc_name: data-postgres-0
        storage_class: longhorn
"""

RETURN = r"""
volumes:
  description: One entry per chosen volume, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    volume:
      description: Longhorn volume name.
      type: str
      sample: pvc-0123abcd
    pv_name:
      description: Name of its PV.
      type: str
      sample: pvc-0123abcd
    pvc_namespace:
      description: Namespace of the claim; null when no source maps the volume.
      type: str
      sample: apps
    pvc_name:
      description: Name of the claim; null when no source maps the volume.
      type: str
      sample: app-data
    source:
      description:
        - Where the claim came from, C(kubernetes_status), C(manifest) or C(mapping).
        - C(pv_claim_ref) when a run was cut off after the volume's PV was created and before its claim.
      type: str
      sample: kubernetes_status
    storage_class:
      description: StorageClass name on the PV and claim.
      type: str
      sample: longhorn
    state:
      description: C(Planned) (check mode), C(Created), C(Bound) (already there), C(Pending) (not waited for) or C(Failed).
      type: str
      sample: Created
    error:
      description: Why the volume failed; null otherwise.
      type: str
      sample: null
    replaced:
      description: With O(replace_empty), the claim that was replaced, else null.
      type: dict
      contains:
        old_pv:
          description: The PV the claim was bound to.
          type: str
        old_volume:
          description: The fresh Longhorn volume behind it, which is kept.
          type: str
        old_volume_bytes:
          description: Its C(actualSize) when it was checked.
          type: int
        workloads:
          description: Workloads scaled to zero and back, as C(Kind/name=replicas).
          type: list
          elements: str
failed_volumes:
  description: Names of the volumes that failed.
  returned: always
  type: list
  elements: str
  sample: []
created_namespaces:
  description: Namespaces the module created (or would create, in check mode).
  returned: always
  type: list
  elements: str
  sample: [apps]
duration:
  description: Seconds the module ran.
  returned: always
  type: float
  sample: 4.2
"""

import time

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    WaitTimeout,
    auth_argument_spec,
    new_module,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    DRIVER_NAME,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._pv_from_volume import (
    SOURCE_PV_CLAIM_REF,
    STATIC_STORAGE_CLASS,
    claim_for,
    claim_users,
    default_pv_name,
    load_manifest,
    pv_body,
    pv_conflict,
    pvc_body,
    pvc_conflict,
    replace_refusal,
    restore_pending,
    storage_class_for,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_restore import original_volume_name


def argument_spec():
    return auth_argument_spec(
        volumes=dict(type="list", elements="str"),
        cluster_state_manifest=dict(type="path"),
        mapping=dict(type="list", elements="dict", options=dict(
            volume=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            pvc_name=dict(type="str", required=True),
            storage_class=dict(type="str"),
        )),
        storage_class=dict(type="str", default=STATIC_STORAGE_CLASS),
        fs_type=dict(type="str", default="ext4"),
        create_namespaces=dict(type="bool", default=False),
        replace_empty=dict(type="bool", default=False),
        replace_empty_max_bytes=dict(type="int", default=0),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
        wait_sleep=dict(type="int", default=2),
    )


def read_manifest(path):
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise LonghornError("Cannot read cluster_state_manifest %s: %s" % (path, exc.strerror or exc)) from None
    try:
        return load_manifest(text, path)
    except ValueError as exc:
        raise LonghornError(str(exc)) from None


def entry_for(name):
    return {"volume": name, "pv_name": None, "pvc_namespace": None, "pvc_name": None, "source": None, "storage_class": None,
            "state": "Planned", "error": None, "replaced": None}


def plan(params, access):
    """Entries per volume, and what to create: {volume: (pv body or None, pvc body or None)}."""
    manifest = read_manifest(params["cluster_state_manifest"])
    mapping = {item["volume"]: item for item in params["mapping"] or []}
    volumes = {v["metadata"]["name"]: v for v in access.list("Volume", API_VERSION, namespace=params["namespace"])}
    pvs = {pv["metadata"]["name"]: pv for pv in access.list("PersistentVolume", "v1")}
    handled = {((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle"): pv for pv in pvs.values()
               if ((pv.get("spec") or {}).get("csi") or {}).get("driver") == DRIVER_NAME}
    claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in access.list("PersistentVolumeClaim", "v1")}
    classes = {original_volume_name(bv): (bv.get("status") or {}).get("storageClassName")
               for bv in access.list("BackupVolume", API_VERSION, namespace=params["namespace"])}
    backups = {b["metadata"]["name"]: b for b in access.list("Backup", API_VERSION, namespace=params["namespace"])} if params["replace_empty"] else {}
    names = params["volumes"] if params["volumes"] else sorted(name for name in volumes if name not in handled)
    entries, work = {}, {}
    replacements = {}
    for name in sorted(set(names)):
        entry = entries[name] = entry_for(name)
        volume = volumes.get(name)
        if volume is None:
            entry.update(state="Failed", error="Longhorn volume %s does not exist" % name)
            continue
        pending = restore_pending(volume)
        if pending:
            entry.update(state="Failed", error=pending)
            continue
        namespace, claim_name, source = claim_for(volume, manifest, mapping)
        existing_pv = handled.get(name)
        claim_ref = ((existing_pv or {}).get("spec") or {}).get("claimRef") or {}
        if claim_name is None and claim_ref.get("name"):
            # A run cut off between our PV and its claim: Longhorn clears kubernetesStatus when a new PV
            # appears (ref §1.5), but the PV itself is pre-bound to the claim.
            namespace, claim_name, source = claim_ref.get("namespace"), claim_ref["name"], SOURCE_PV_CLAIM_REF
        pv_name = existing_pv["metadata"]["name"] if existing_pv else default_pv_name(volume, manifest)
        storage_class = ((existing_pv or {}).get("spec") or {}).get("storageClassName") or \
            storage_class_for(volume, manifest, mapping, classes, params["storage_class"])
        entry.update(pv_name=pv_name, pvc_namespace=namespace, pvc_name=claim_name, source=source, storage_class=storage_class)
        if claim_name is None:
            entry.update(state="Failed", error="no claim known for volume %s: its kubernetesStatus names none, and neither the "
                                               "cluster-state manifest nor mapping lists it" % name)
            continue
        problem = pv_conflict(pvs[pv_name], name) if pv_name in pvs and existing_pv is None else None
        claim = claims.get((namespace, claim_name))
        if problem is None and claim is not None:
            problem = pvc_conflict(claim, pv_name)
            if problem and (claim.get("spec") or {}).get("volumeName") in pvs:
                other = ((pvs[claim["spec"]["volumeName"]].get("spec") or {}).get("csi") or {}).get("volumeHandle")
                problem += " (volume %s, not volume %s)" % (other, name)
        replacing = False
        if problem and params["replace_empty"] and claim is not None and (claim.get("spec") or {}).get("volumeName") in pvs:
            fresh_pv = pvs[claim["spec"]["volumeName"]]
            fresh_volume = volumes.get(((fresh_pv.get("spec") or {}).get("csi") or {}).get("volumeHandle"))
            refusal = replace_refusal(fresh_volume, volume, backups)
            if refusal:
                problem += "; replace_empty refused: %s" % refusal
            else:
                replacements[name] = {"claim": claim, "pv": fresh_pv, "volume": fresh_volume}
                problem, replacing = None, True
        if problem:
            entry.update(state="Failed", error=problem)
            continue
        pv = None if existing_pv else pv_body(volume, pv_name, storage_class, params["fs_type"], namespace, claim_name)
        pvc = None if claim and not replacing else pvc_body(volume, pv_name, storage_class, namespace, claim_name)
        if pv is None and pvc is None:
            entry["state"] = "Bound" if (claim.get("status") or {}).get("phase") == "Bound" else "Pending"
            continue
        work[name] = (pv, pvc)
    return entries, work, replacements


def owners(access, namespace, pods):
    """The Deployments and StatefulSets behind ``pods``, as {(kind, name): replicas}."""
    found = {}
    for pod in pods:
        for ref in pod["metadata"].get("ownerReferences") or []:
            kind, name = ref.get("kind"), ref.get("name")
            if kind == "ReplicaSet":
                replica_set = access.get("ReplicaSet", "apps/v1", name, namespace=namespace) or {}
                parents = [r for r in replica_set.get("metadata", {}).get("ownerReferences") or [] if r.get("kind") == "Deployment"]
                if not parents:
                    raise LonghornError("pod %s/%s belongs to ReplicaSet %s without a Deployment; scale it down by hand"
                                        % (namespace, pod["metadata"]["name"], name))
                kind, name = "Deployment", parents[0]["name"]
            elif kind != "StatefulSet":
                raise LonghornError("pod %s/%s belongs to %s %s, which replace_empty cannot scale; scale it down by hand"
                                    % (namespace, pod["metadata"]["name"], kind, name))
            if (kind, name) not in found:
                workload = access.get(kind, "apps/v1", name, namespace=namespace) or {}
                found[(kind, name)] = (workload.get("spec") or {}).get("replicas", 1)
    return found


def scale(access, namespace, workloads, replicas=None):
    for (kind, name), original in sorted(workloads.items()):
        access.merge_patch(kind, "apps/v1", name, {"spec": {"replicas": original if replicas is None else replicas}}, namespace=namespace)


def wait_detached(module, access, volume_name, clock=time.monotonic, sleep=time.sleep):
    params = module.params
    deadline = clock() + params["wait_timeout"]
    while True:
        volume = access.get("Volume", API_VERSION, volume_name, namespace=params["namespace"]) or {}
        if (volume.get("status") or {}).get("state") == "detached":
            return volume
        if clock() >= deadline:
            raise LonghornError("volume %s did not detach within %ss after its workloads were scaled to zero" % (volume_name, params["wait_timeout"]))
        sleep(params["wait_sleep"])


def wait_gone(module, access, kind, name, namespace=None, clock=time.monotonic, sleep=time.sleep):
    deadline = clock() + module.params["wait_timeout"]
    while access.get(kind, "v1", name, namespace=namespace) is not None:
        if clock() >= deadline:
            raise LonghornError("%s %s was not deleted within %ss" % (kind, name, module.params["wait_timeout"]))
        sleep(module.params["wait_sleep"])


def replace_claims(module, access, entries, work, replacements):
    """replace_empty: swap claims bound to fresh, empty volumes; returns the workloads to scale back per namespace."""
    scaled_back_later = []
    for name, found in sorted(replacements.items()):
        entry = entries[name]
        namespace, claim_name = entry["pvc_namespace"], entry["pvc_name"]
        pods = claim_users(access.list("Pod", "v1", namespace=namespace), claim_name)
        workloads = owners(access, namespace, pods)
        record = {"old_pv": found["pv"]["metadata"]["name"], "old_volume": found["volume"]["metadata"]["name"],
                  "old_volume_bytes": (found["volume"].get("status") or {}).get("actualSize"),
                  "workloads": ["%s/%s=%s" % (kind, workload, replicas) for (kind, workload), replicas in sorted(workloads.items())]}
        entry["replaced"] = record
        if module.check_mode:
            continue
        scale(access, namespace, workloads, replicas=0)
        entry["wrote"] = True
        fresh = wait_detached(module, access, record["old_volume"])
        used = int((fresh.get("status") or {}).get("actualSize") or 0)
        record["old_volume_bytes"] = used
        if used > module.params["replace_empty_max_bytes"]:
            scale(access, namespace, workloads)
            limit = module.params["replace_empty_max_bytes"]
            entry.update(state="Failed", replaced=None, error="PVC %s/%s is bound to volume %s, which holds %d bytes of data (more than "
                         "replace_empty_max_bytes=%d); it was left as it is" % (namespace, claim_name, record["old_volume"], used, limit))
            del work[name]
            continue
        # Retain first, so that deleting the claim never deletes the fresh volume.
        if (found["pv"].get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Retain":
            access.merge_patch("PersistentVolume", "v1", record["old_pv"], {"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
        access.delete("PersistentVolumeClaim", "v1", claim_name, namespace=namespace)
        wait_gone(module, access, "PersistentVolumeClaim", claim_name, namespace=namespace)
        access.delete("PersistentVolume", "v1", record["old_pv"])
        scaled_back_later.append((namespace, workloads))
    return scaled_back_later


def ensure_namespaces(module, access, entries, work):
    wanted = sorted({entries[name]["pvc_namespace"] for name, (_pv, pvc) in work.items() if pvc is not None})
    missing = [ns for ns in wanted if access.get("Namespace", "v1", ns) is None]
    if missing and not module.params["create_namespaces"]:
        for name, (_pv, pvc) in list(work.items()):
            if pvc is not None and entries[name]["pvc_namespace"] in missing:
                entries[name].update(state="Failed", error="namespace %s does not exist (set create_namespaces=true to create it)"
                                     % entries[name]["pvc_namespace"])
                del work[name]
        return []
    for ns in missing:
        access.create("Namespace", "v1", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return missing


def create_all(module, access, entries, work, new_namespaces):
    for name, (pv, pvc) in sorted(work.items()):
        try:
            if pv is not None:
                access.create("PersistentVolume", "v1", pv)
                entries[name]["wrote"] = True
            # A dry run cannot create a claim in a namespace that was itself only a dry run, nor one that
            # replace_empty would delete first.
            if pvc is not None and not (module.check_mode and (pvc["metadata"]["namespace"] in new_namespaces or entries[name]["replaced"])):
                access.create("PersistentVolumeClaim", "v1", pvc, namespace=pvc["metadata"]["namespace"])
                entries[name]["wrote"] = True
        except LonghornError as exc:
            entries[name].update(state="Failed", error=str(exc))
            continue
        entries[name]["state"] = "Planned" if module.check_mode else "Created"


def wait_bound(module, access, entries):
    params = module.params
    waiting = {(e["pvc_namespace"], e["pvc_name"]): e for e in entries.values() if e["state"] in ("Created", "Pending")}
    for namespace in sorted({key[0] for key in waiting}):
        names = [key[1] for key in waiting if key[0] == namespace]
        try:
            access.wait_for("PersistentVolumeClaim", "v1", names, lambda c: (c.get("status") or {}).get("phase") == "Bound",
                            namespace=namespace, timeout=params["wait_timeout"], sleep=params["wait_sleep"])
        except WaitTimeout as exc:
            for claim_name in exc.details.get("pending") or []:
                entry = waiting[(namespace, claim_name)]
                phase = ((exc.details.get("last") or {}).get(claim_name) or {}).get("status", {}).get("phase") or "unknown"
                entry.update(state="Failed", error="PVC %s/%s not Bound after %ss (phase %s)" % (namespace, claim_name, params["wait_timeout"], phase))


def main():
    module = new_module(argument_spec(), supports_check_mode=True)
    started = time.monotonic()
    try:
        access = K8sAccess(module)
        entries, work, replacements = plan(module.params, access)
        scale_back = replace_claims(module, access, entries, work, replacements)
        created_namespaces = ensure_namespaces(module, access, entries, work)
        create_all(module, access, entries, work, created_namespaces)
        if module.params["wait"] and not module.check_mode:
            wait_bound(module, access, entries)
        for namespace, workloads in scale_back:
            scale(access, namespace, workloads)
    except LonghornError as exc:
        module.fail_json(msg=str(exc), duration=round(time.monotonic() - started, 3), **exc.details)
    volumes = [entries[name] for name in sorted(entries)]
    wrote = [entry.pop("wrote", False) for entry in volumes]  # pop from every entry, not only up to the first True
    changed = bool(created_namespaces) or True in wrote
    result = {"changed": changed, "volumes": volumes, "created_namespaces": created_namespaces,
              "failed_volumes": [e["volume"] for e in volumes if e["state"] == "Failed"], "duration": round(time.monotonic() - started, 3)}
    if module._diff:
        result["diff"] = {"before": {}, "after": {name: {"pv": pv, "pvc": pvc} for name, (pv, pvc) in sorted(work.items())}}
    if result["failed_volumes"]:
        failures = ["%s (%s)" % (e["volume"], e["error"]) for e in volumes if e["state"] == "Failed"]
        module.fail_json(msg="%d of %d volumes have no claim: %s" % (len(failures), len(volumes), "; ".join(failures)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
