# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: backup_gate_findings
short_description: Decide whether Longhorn's data is protected well enough to tear the cluster down
version_added: 1.0.0
author:
  - homelab.longhorn_dr contributors (@homelab)
description:
  - The evaluation behind the P(homelab.longhorn_dr.backup_gate#role) role. It fails closed - anything it cannot
    confirm is a finding - and passes only when all of these hold.
  - The backup target is available.
  - Every volume bound to a PVC has a C(Completed) backup newer than O(max_age), that backup (or a newer complete
    one) is in the bucket, and its newest backup did not fail (unless O(fail_on_failed_backup=false)).
  - A C(Ready) SystemBackup newer than O(max_age) exists and, when the bucket could be read, is in the bucket.
  - The cluster state was exported within O(max_age), in a known format.
  - Volumes that are not bound to a PVC are reported but never block.
  - A task result that is missing, skipped or failed (the info module could not reach Longhorn, the bucket check
    could not run, the manifest could not be read) is a finding, never a pass.
positional: _input
options:
  _input:
    description:
      - The registered result of M(homelab.longhorn_dr.longhorn_backup_info).
    type: dict
    required: true
  bucket:
    description:
      - The registered result of M(homelab.longhorn_dr.minio_bucket_check) on the backup bucket.
      - When it is V(null), skipped or failed, the bucket is a finding and no backup can be confirmed in it.
    type: dict
  cluster_state:
    description:
      - Where the cluster-state export's manifest comes from, in one of two shapes.
      - The RV(homelab.longhorn_dr.minio_bucket_check#module:cluster_state) dict of the bucket check.
      - The registered result of M(ansible.builtin.slurp) of C(manifest.json) (a failed slurp means no manifest).
      - V(null) means the export was not checked, which is a finding.
    type: dict
  cluster_state_location:
    description:
      - How to name the export in messages when O(cluster_state) does not name it (a failed slurp, no export in the bucket).
      - The manifest's key from the bucket check, or the slurped path, win over it.
    type: str
  max_age:
    description: Maximum age of the volume backups, the system backup and the export; seconds or a duration (V(24h), V(1d), V(90m)).
    type: raw
    default: 24h
  fail_on_failed_backup:
    description:
      - Whether a volume whose newest backup failed (C(Error) or C(Unknown)) is unprotected even when an older
        complete backup is still newer than O(max_age).
    type: bool
    default: true
  now:
    description:
      - The time to measure a local manifest's age against, an RFC 3339 string; the controller's clock when not set.
      - Ages of backups come from the modules (Kubernetes API server and S3 server clocks).
    type: str
"""

EXAMPLES = r"""
- name: Evaluate the gate
  ansible.builtin.set_fact:
    gate: >-
      {{ info_result | homelab.longhorn_dr.backup_gate_findings(bucket=bucket_result,
         cluster_state=bucket_result.cluster_state, max_age='24h') }}

- name: Refuse unless everything is protected
  ansible.builtin.fail:
    msg: "{{ gate.summary }}"
  when: not gate.passed
"""

RETURN = r"""
_value:
  description: The verdict and everything it is based on.
  type: dict
  contains:
    passed:
      description: Whether there is no finding.
      type: bool
    summary:
      description: One line naming every finding, or saying that the gate passed.
      type: str
    report:
      description: The readable report, one line per entry.
      type: list
      elements: str
    findings:
      description: Every blocking finding, each with C(scope) (C(volume), C(backup_target), C(system_backup),
        C(cluster_state), C(bucket), C(longhorn)), C(subject) and C(reason).
      type: list
      elements: dict
    messages:
      description: "Every finding as one C(subject: reason) line, in the order of RV(_value.findings)."
      type: list
      elements: str
    unprotected_volumes:
      description: Bound volumes that are not protected, each with C(volume), C(pvc_namespace), C(pvc_name),
        C(pvc) (C(namespace/name)) and C(reasons).
      type: list
      elements: dict
    protected_volumes:
      description: Bound volumes that are protected, each with C(volume), C(pvc), C(backup) and C(age_seconds).
      type: list
      elements: dict
    unbound_volumes:
      description: Volumes not bound to a PVC (reported, not blocking), each with C(volume), C(state), C(pvc) and C(note).
      type: list
      elements: dict
    max_age:
      description: O(max_age) in seconds.
      type: int
    max_age_text:
      description: O(max_age) as a duration, for example C(1d).
      type: str
    evaluated_at:
      description: The time of the evaluation (controller clock), UTC.
      type: str
"""

import datetime
import json
from base64 import b64decode

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - ansible-core is always there on a controller
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._bucket_inventory import InvalidOption, parse_max_age
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import parse_rfc3339

CLUSTER_STATE_FORMAT = "homelab.longhorn_dr/cluster-state/v1"
KNOWN_CLUSTER_STATE_FORMATS = (CLUSTER_STATE_FORMAT,)
# Backup states (ref §1.3): these two mean the backup did not make it.
FAILED_BACKUP_STATES = ("Error", "Unknown")
# PV phases after which the PVC is gone, so kubernetesStatus only remembers it (ref §1.5).
UNBOUND_PV_STATUSES = ("Available", "Released", "Failed")
SHOWN_NAMES = 5


def _utc(value):
    """An aware UTC datetime from a datetime or an RFC 3339 string; None when absent or unreadable."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if not isinstance(value, str):
        return None
    return parse_rfc3339(value)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def human_age(seconds):
    """``183600`` -> ``2d3h``: the two largest units, enough to read an age at a glance."""
    seconds = max(int(seconds), 0)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (name, size) in enumerate(units):
        if seconds >= size:
            text = "%d%s" % (seconds // size, name)
            if index + 1 < len(units):
                next_name, next_size = units[index + 1]
                if (seconds % size) // next_size:
                    text += "%d%s" % ((seconds % size) // next_size, next_name)
            return text
    return "0s"


def _names(items):
    items = list(items)
    text = ", ".join(items[:SHOWN_NAMES])
    if len(items) > SHOWN_NAMES:
        text += " and %d more" % (len(items) - SHOWN_NAMES)
    return text


def _usable(result, *keys):
    """A registered task result that ran and returned ``keys``; else the reason it is not usable."""
    if result is None:
        return "not checked"
    if not isinstance(result, dict):
        return "not a task result (%s)" % type(result).__name__
    if result.get("skipped"):
        return "skipped (%s)" % (result.get("skip_reason") or result.get("false_condition") or "condition false")
    missing = [key for key in keys if key not in result]
    if result.get("failed") or missing:
        return "failed: %s" % (result.get("msg") or "no %s in the result" % ", ".join(missing))
    return None


def _is_bound(volume):
    """Bound to a PVC: kubernetesStatus names a PVC that still refers to it (ref §1.5 lastPVCRefAt, pvStatus).

    Anything unclear (a PVC name without a PV status) counts as bound, so it must be protected.
    """
    if not volume.get("pvc_name"):
        return False
    if volume.get("last_pvc_ref_at"):
        return False
    return volume.get("pv_status") not in UNBOUND_PV_STATUSES


def _pvc(volume):
    if volume.get("pvc_name"):
        return "%s/%s" % (volume.get("pvc_namespace") or "?", volume["pvc_name"])
    return None


class Gate:
    """One evaluation; ``run()`` returns the result documented in RETURN."""

    def __init__(self, info, bucket=None, cluster_state=None, cluster_state_location=None, max_age="24h",
                 fail_on_failed_backup=True, now=None):
        try:
            self.max_age = parse_max_age(max_age)
        except InvalidOption as exc:
            raise AnsibleFilterError("backup_gate_findings: %s" % exc) from None
        if self.max_age is None:
            raise AnsibleFilterError("backup_gate_findings: max_age must be set")
        self.max_age_text = human_age(self.max_age)
        self.now = _utc(now) if now is not None else datetime.datetime.now(datetime.timezone.utc)
        if self.now is None:
            raise AnsibleFilterError("backup_gate_findings: now is not an RFC 3339 time: %r" % (now,))
        self.info = info
        self.bucket = bucket
        self.cluster_state = cluster_state
        self.cluster_state_location = cluster_state_location
        self.fail_on_failed_backup = fail_on_failed_backup
        self.findings = []
        self.bucket_volumes = None      # name -> bucket inventory entry, when the bucket was read
        self.bucket_problem = None      # why backups cannot be confirmed in the bucket

    def add(self, scope, subject, reason):
        self.findings.append({"scope": scope, "subject": subject, "reason": reason})

    def too_old(self, age_seconds):
        # Fresh up to and including max_age, as minio_bucket_check counts it; a negative age (clock skew) is fresh.
        return age_seconds is None or age_seconds > self.max_age

    def old_text(self, age_seconds):
        return "%s old (max_age %s)" % (human_age(age_seconds), self.max_age_text)

    # ---- the parts ------------------------------------------------------------------------
    def check_bucket(self):
        problem = _usable(self.bucket, "access", "volumes")
        if problem is not None:
            self.bucket_problem = "the bucket check %s" % problem
            self.add("bucket", "bucket", "bucket check %s" % problem)
            return
        access = self.bucket.get("access") or {}
        where = "bucket %s at %s" % (self.bucket.get("bucket") or "?", self.bucket.get("endpoint_url") or "?")
        if not access.get("readable"):
            error = access.get("error") or "the backupstore could not be listed"
            self.bucket_problem = "the bucket could not be read"
            self.add("bucket", where, "cannot be read: %s" % error)
            return
        self.bucket_volumes = {entry.get("name"): entry for entry in self.bucket.get("volumes") or []}

    def check_target(self, info):
        target = info.get("backup_target")
        if not target:
            self.add("backup_target", "backup target", "no backup target is configured")
            return None
        subject = "backup target %s (%s)" % (target.get("name") or "default", target.get("url") or "no URL")
        if target.get("available") is not True:
            self.add("backup_target", subject, "not available: %s" % (target.get("message") or "Longhorn gives no reason"))
        return {key: target.get(key) for key in ("name", "url", "available", "message", "last_synced_at")}

    def check_system_backup(self, info):
        ready = info.get("last_ready_system_backup")
        if not ready:
            newest = (info.get("system_backups") or [None])[0]
            detail = ""
            if newest:
                detail = " (newest: %s, %s%s)" % (newest.get("name"), newest.get("state") or "no state",
                                                  ": " + newest["error"] if newest.get("error") else "")
            self.add("system_backup", "system backup", "no Ready system backup%s" % detail)
            return None
        name = ready.get("name")
        age = ready.get("age_seconds")
        if self.too_old(age):
            self.add("system_backup", "system backup %s" % name,
                     "newest Ready system backup is %s" % (self.old_text(age) if age is not None else "of unknown age"))
        elif self.bucket_volumes is not None:
            in_bucket = {entry.get("name") for entry in self.bucket.get("system_backups") or []}
            if name not in in_bucket:
                self.add("system_backup", "system backup %s" % name,
                         "Ready in the cluster but not in the bucket (the bucket has: %s)" % (_names(sorted(in_bucket)) or "none"))
        return {"name": name, "created_at": ready.get("created_at"), "age_seconds": age}

    def _manifest_from_slurp(self, result):
        location = self.cluster_state_location or result.get("source") or "manifest.json"
        problem = _usable(result, "content")
        if problem is not None:
            return location, None, "cannot be read (%s)" % problem
        try:
            text = b64decode(result["content"]).decode("utf-8") if result.get("encoding", "base64") == "base64" else result["content"]
            manifest = json.loads(text)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            return location, None, "is not valid JSON: %s" % exc
        if not isinstance(manifest, dict):
            return location, None, "is not a JSON object"
        exported = _utc(manifest.get("exported_at"))
        if exported is None:
            return location, None, "has no valid exported_at time (%r)" % (manifest.get("exported_at"),)
        exported = exported.replace(microsecond=0)
        age = int((self.now - exported).total_seconds())
        return location, {"format": manifest.get("format"), "exported_at": _iso(exported), "age_seconds": age}, None

    def check_cluster_state(self):
        state = self.cluster_state
        if state is None:
            self.add("cluster_state", "cluster state", "the cluster-state export was not checked")
            return None
        if isinstance(state, dict) and ("content" in state or "failed" in state or "skipped" in state or "msg" in state):
            location, manifest, error = self._manifest_from_slurp(state)
        elif isinstance(state, dict):
            location = state.get("key") or self.cluster_state_location or "manifest.json"
            if state.get("error"):
                manifest, error = None, "cannot be read: %s" % state["error"]
            elif not state.get("found"):
                manifest, error = None, "does not exist"
            else:
                manifest, error = {key: state.get(key) for key in ("format", "exported_at", "age_seconds")}, None
        else:
            self.add("cluster_state", "cluster state", "the cluster-state export was not checked (got %s)" % type(state).__name__)
            return None
        subject = "cluster-state export %s" % location
        if error:
            self.add("cluster_state", subject, error)
            return {"location": location, "exported_at": None, "age_seconds": None, "format": None}
        manifest["location"] = location
        if manifest.get("format") not in KNOWN_CLUSTER_STATE_FORMATS:
            self.add("cluster_state", subject, "unknown format %r (expected %s)" % (manifest.get("format"), CLUSTER_STATE_FORMAT))
        elif self.too_old(manifest.get("age_seconds")):
            self.add("cluster_state", subject, "exported at %s, %s" % (manifest.get("exported_at"), self.old_text(manifest.get("age_seconds"))))
        return manifest

    def volume_reasons(self, volume):
        reasons = []
        completed = volume.get("last_completed_backup")
        newest = volume.get("last_backup")
        failed = newest if newest and newest.get("state") in FAILED_BACKUP_STATES else None
        failed_text = None
        if failed:
            failed_text = "last backup %s failed: %s" % (failed.get("name"), failed.get("error") or "%s, no error message" % failed.get("state"))
        if not completed:
            if failed_text:
                reasons.append("no completed backup; " + failed_text)
            elif newest:
                reasons.append("no completed backup (backup %s is %s)" % (newest.get("name"), newest.get("state") or "new"))
            else:
                reasons.append("no backup")
            return reasons
        name = completed.get("name")
        age = completed.get("age_seconds")
        if self.too_old(age):
            reasons.append("last completed backup %s is %s" % (name, self.old_text(age) if age is not None else "of unknown age"))
        if failed_text and failed.get("name") != name and self.fail_on_failed_backup:
            reasons.append(failed_text)
        reason = self.bucket_reason(volume, completed)
        if reason:
            reasons.append(reason)
        return reasons

    def bucket_reason(self, volume, completed):
        """Whether the completed backup (or a newer complete one) is in the bucket."""
        name = completed.get("name")
        if self.bucket_volumes is None:
            return "cannot confirm that backup %s is in the bucket (%s)" % (name, self.bucket_problem)
        entry = self.bucket_volumes.get(volume.get("name"))
        if not entry or not entry.get("last_backup_name"):
            return "backup %s is not in the bucket (the bucket has no complete backup of this volume)" % name
        if entry["last_backup_name"] == name:
            return None
        # Both times are Longhorn's snapshot times (volume.cfg LastBackupAt, ref §3.3), so they compare.
        ours = _utc(completed.get("snapshot_created_at")) or _utc(completed.get("created_at"))
        theirs = _utc(entry.get("last_backup_at"))
        if ours is not None and theirs is not None and theirs > ours and not self.too_old(entry.get("last_backup_age")):
            return None
        age = entry.get("last_backup_age")
        return "backup %s is not in the bucket (bucket's newest: %s, %s)" % (
            name, entry["last_backup_name"], "%s old" % human_age(age) if age is not None else "of unknown age")

    # ---- everything -----------------------------------------------------------------------
    def run(self):
        result = {"passed": False, "max_age": self.max_age, "max_age_text": self.max_age_text, "evaluated_at": _iso(self.now),
                  "findings": self.findings, "unprotected_volumes": [], "protected_volumes": [], "unbound_volumes": [],
                  "backup_target": None, "system_backup": None, "cluster_state": None, "volumes_checked": False}
        self.check_bucket()
        problem = _usable(self.info, "backup_target", "volumes")
        if problem is not None:
            self.add("longhorn", "Longhorn", "cannot read the backup state (longhorn_backup_info %s); no volume can be "
                     "confirmed as protected" % problem)
        else:
            result["volumes_checked"] = True
            result["backup_target"] = self.check_target(self.info)
            result["system_backup"] = self.check_system_backup(self.info)
            for volume in sorted(self.info.get("volumes") or [], key=lambda item: (_pvc(item) or "~", item.get("name") or "")):
                self.evaluate_volume(volume, result)
        result["cluster_state"] = self.check_cluster_state()
        # Volume findings first, in the order of the report.
        self.findings.sort(key=lambda item: item["scope"] != "volume")
        result["passed"] = not self.findings
        result["messages"] = ["%s: %s" % (item["subject"], item["reason"]) for item in self.findings]
        result["report"] = self.report(result)
        result["summary"] = self.summary(result)
        return result

    def evaluate_volume(self, volume, result):
        name = volume.get("name")
        pvc = _pvc(volume)
        if not _is_bound(volume):
            note = "not bound to a PVC%s; reported, not required" % (
                " (PVC %s is gone)" % pvc if pvc else "")
            result["unbound_volumes"].append({"volume": name, "state": volume.get("state"), "pvc": pvc, "note": note})
            return
        reasons = self.volume_reasons(volume)
        if reasons:
            result["unprotected_volumes"].append({"volume": name, "pvc_namespace": volume.get("pvc_namespace"),
                                                  "pvc_name": volume.get("pvc_name"), "pvc": pvc, "reasons": reasons})
            for reason in reasons:
                self.add("volume", "%s (%s)" % (pvc, name), reason)
        else:
            completed = volume["last_completed_backup"]
            result["protected_volumes"].append({"volume": name, "pvc": pvc, "backup": completed.get("name"),
                                                "age_seconds": completed.get("age_seconds")})

    def report(self, result):
        bound = len(result["unprotected_volumes"]) + len(result["protected_volumes"])
        others = [item for item in self.findings if item["scope"] != "volume"]
        lines = ["Backup gate %s (max_age %s): %s, %d other finding(s)" % (
            "PASSED" if result["passed"] else "REFUSED", self.max_age_text,
            "%d of %d bound volume(s) unprotected" % (len(result["unprotected_volumes"]), bound) if result["volumes_checked"]
            else "volumes unknown", len(others))]
        if result["unprotected_volumes"]:
            lines.append("Unprotected volumes:")
            for entry in result["unprotected_volumes"]:
                lines.append("  - %s (%s): %s" % (entry["pvc"], entry["volume"], "; ".join(entry["reasons"])))
        if others:
            lines.append("Other findings:")
            for item in others:
                lines.append("  - %s: %s" % (item["subject"], item["reason"]))
        if result["protected_volumes"]:
            lines.append("Protected volumes: %s" % ", ".join(
                "%s (%s, %s old)" % (entry["pvc"], entry["backup"], human_age(entry["age_seconds"] or 0))
                for entry in result["protected_volumes"]))
        if result["unbound_volumes"]:
            lines.append("Not bound to a PVC (reported, not blocking): %s" % ", ".join(
                "%s (%s)" % (entry["volume"], entry["state"] or "unknown state") for entry in result["unbound_volumes"]))
        return lines

    def summary(self, result):
        if result["passed"]:
            return "Backup gate passed: %d bound volume(s) protected, system backup %s, cluster state exported at %s (max_age %s)" % (
                len(result["protected_volumes"]), (result["system_backup"] or {}).get("name"),
                (result["cluster_state"] or {}).get("exported_at"), self.max_age_text)
        parts = []
        if result["unprotected_volumes"]:
            parts.append("%d unprotected volume(s): %s" % (len(result["unprotected_volumes"]), "; ".join(
                "%s (%s): %s" % (entry["pvc"], entry["volume"], ", ".join(entry["reasons"])) for entry in result["unprotected_volumes"])))
        parts.extend("%s: %s" % (item["subject"], item["reason"]) for item in self.findings if item["scope"] != "volume")
        return "Backup gate refused (max_age %s): %s" % (self.max_age_text, "; ".join(parts))


def backup_gate_findings(info, bucket=None, cluster_state=None, cluster_state_location=None, max_age="24h",
                         fail_on_failed_backup=True, now=None):
    """See DOCUMENTATION."""
    return Gate(info, bucket=bucket, cluster_state=cluster_state, cluster_state_location=cluster_state_location,
                max_age=max_age, fail_on_failed_backup=fail_on_failed_backup, now=now).run()


class FilterModule:
    """homelab.longhorn_dr.backup_gate_findings"""

    def filters(self):
        return {"backup_gate_findings": backup_gate_findings}
