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
  - The backup the gate counts on for each volume (the bucket's newest complete backup, which a restore uses) is
    restorable at the structure level, unless O(block_check=false) opts out. Its cfg can be read and every block it
    references is in the bucket (the bucket check must have run with C(integrity=structure) or C(full)); with
    C(integrity=full) no block is corrupt either.
  - No time counts as fresh that lies more than O(future_tolerance) seconds in the future of the clock it is measured
    against (a backup, the system backup, the export); such a time is a clock problem and a finding.
  - A C(Ready) SystemBackup newer than O(max_age) exists and, when the bucket could be read, is in the bucket with
    its zip, does not fail its checksum, and records the same bucket and path as its target URL (a system restore
    downloads from that URL).
  - The cluster state was exported within O(max_age), in a known format.
  - A volume that no PVC claims but that holds data (C(actual_size) above 0, or unknown) is at risk on teardown. It
    needs a fresh, restorable backup like a bound volume, or must be named in O(accepted_unclaimed_volumes).
    Unclaimed volumes that hold no data are reported but never block.
  - A task result that is missing, skipped or failed (the info module could not reach Longhorn, the bucket check
    could not run or timed out, a listing was cut short, the manifest could not be read) is a finding, never a pass.
  - Opt-outs (O(block_check=false)) and accepted volumes are returned in RV(_value.waivers) so that they can be
    printed and logged like an override.
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
  block_check:
    description:
      - Whether the blocks of each counted backup must be proven present in the bucket.
      - V(false) is an explicit opt-out (the bucket check ran with C(integrity=none)); it is returned in
        RV(_value.waivers), and missing blocks then go unnoticed.
    type: bool
    default: true
  accepted_unclaimed_volumes:
    description:
      - Names of Longhorn volumes that no PVC claims, that hold data without a fresh backup, and whose loss on teardown
        the user accepts. Each one that would otherwise block is returned in RV(_value.waivers).
    type: list
    elements: str
    default: []
  future_tolerance:
    description:
      - Seconds a time may lie in the future of the clock it is measured against before it is a finding rather than
        fresh (clocks of the nodes, the S3 server and the controller differ a little).
    type: int
    default: 300
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
      description: Every blocking finding, each with C(scope) (C(volume), C(unclaimed_volume), C(backup_target),
        C(system_backup), C(cluster_state), C(bucket), C(longhorn)), C(subject) and C(reason).
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
      description: Volumes not bound to a PVC that do not block (no data, or a fresh restorable backup, or accepted),
        each with C(volume), C(state), C(pvc), C(actual_size) and C(note).
      type: list
      elements: dict
    unclaimed_volumes:
      description: Volumes not bound to a PVC that hold data and are not protected (each blocks unless accepted),
        each with C(volume), C(pvc), C(actual_size), C(reasons) and C(accepted).
      type: list
      elements: dict
    waivers:
      description: What the user chose not to check or accepted to lose (opt-outs and accepted volumes), one line each,
        to print and log like an override. Empty when nothing was waived.
      type: list
      elements: str
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

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._bucket_inventory import (
    FUTURE_TOLERANCE_SECONDS,
    InvalidOption,
    is_fresh,
    parse_max_age,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import InvalidValue, parse_backup_target_url, parse_rfc3339

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


def _holds_data(volume):
    """Whether a volume may hold data: ``actual_size`` above 0, or unknown (fail closed)."""
    size = volume.get("actual_size")
    return size is None or size > 0


def _store_location(url):
    """``(bucket, path)`` of an s3:// target URL, for comparing where things are; None for anything else."""
    try:
        info, _warnings = parse_backup_target_url(url)
    except InvalidValue:
        return None
    if info.get("scheme") != "s3":
        return None
    return info["bucket"], info["prefix"]


class Gate:
    """One evaluation; ``run()`` returns the result documented in RETURN."""

    def __init__(self, info, bucket=None, cluster_state=None, cluster_state_location=None, max_age="24h",
                 fail_on_failed_backup=True, now=None, block_check=True, accepted_unclaimed_volumes=None,
                 future_tolerance=FUTURE_TOLERANCE_SECONDS):
        try:
            self.max_age = parse_max_age(max_age)
        except InvalidOption as exc:
            raise AnsibleFilterError("backup_gate_findings: %s" % exc) from None
        if self.max_age is None:
            raise AnsibleFilterError("backup_gate_findings: max_age must be set")
        if isinstance(future_tolerance, bool) or not isinstance(future_tolerance, int) or future_tolerance < 0:
            raise AnsibleFilterError("backup_gate_findings: future_tolerance: %r is not a whole number of seconds of 0 or more"
                                     % (future_tolerance,))
        accepted = accepted_unclaimed_volumes if accepted_unclaimed_volumes is not None else []
        if not isinstance(accepted, (list, tuple)) or not all(isinstance(item, str) for item in accepted):
            raise AnsibleFilterError("backup_gate_findings: accepted_unclaimed_volumes: %r is not a list of volume names"
                                     % (accepted_unclaimed_volumes,))
        self.max_age_text = human_age(self.max_age)
        self.future_tolerance = future_tolerance
        self.now = _utc(now) if now is not None else datetime.datetime.now(datetime.timezone.utc)
        if self.now is None:
            raise AnsibleFilterError("backup_gate_findings: now is not an RFC 3339 time: %r" % (now,))
        self.info = info
        self.bucket = bucket
        self.cluster_state = cluster_state
        self.cluster_state_location = cluster_state_location
        self.fail_on_failed_backup = fail_on_failed_backup
        self.block_check = bool(block_check)
        self.accepted = set(accepted)
        self.findings = []
        self.waivers = []
        self.bucket_volumes = None      # name -> bucket inventory entry, when the bucket was read
        self.bucket_problem = None      # why backups cannot be confirmed in the bucket
        self.blocks_problem = None      # why no block can be confirmed, when the bucket was read without checking them

    def add(self, scope, subject, reason):
        self.findings.append({"scope": scope, "subject": subject, "reason": reason})

    def too_old(self, age_seconds):
        """Not fresh: unknown, older than max_age (fresh up to and including it, as minio_bucket_check counts it), or
        further in the future than the tolerance (clock skew is never freshness)."""
        return not is_fresh(age_seconds, self.max_age, self.future_tolerance)

    def old_text(self, age_seconds):
        if age_seconds is None:
            return "of unknown age"
        if age_seconds < -self.future_tolerance:
            return ("dated %s in the future (more than the %ds tolerated); check the clocks (NTP) of the nodes, the S3 "
                    "server and this controller" % (human_age(-age_seconds), self.future_tolerance))
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
        level = (self.bucket.get("integrity") or {}).get("level")
        if not self.block_check:
            self.waivers.append("block check turned off (block_check=false, bucket integrity %s): blocks missing from the "
                                "bucket are not detected" % (level or "unknown"))
        elif level not in ("structure", "full"):
            self.blocks_problem = "the bucket check ran with integrity %s, which does not look at blocks" % (level or "unknown")
            self.add("bucket", where, "%s; run it with integrity structure (or full), or opt out of the block check "
                     "explicitly" % self.blocks_problem)

    def check_target(self, info):
        target = info.get("backup_target")
        if not target:
            self.add("backup_target", "backup target", "no backup target is configured")
            return None
        subject = "backup target %s (%s)" % (target.get("name") or "default", target.get("url") or "no URL")
        if target.get("available") is not True:
            self.add("backup_target", subject, "not available: %s" % (target.get("message") or "Longhorn gives no reason"))
        return {key: target.get(key) for key in ("name", "url", "available", "message", "last_synced_at")}

    def checked_location(self):
        """``(bucket, path)`` of the backupstore the bucket check read (the path without ``backupstore/``)."""
        root = (self.bucket.get("backupstore_prefix") or "backupstore/").strip("/")
        path = root[:-len("backupstore")] if root.endswith("backupstore") else root
        return self.bucket.get("bucket"), path.strip("/")

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
        subject = "system backup %s" % name
        if self.too_old(age):
            self.add("system_backup", subject, "newest Ready system backup is %s" % self.old_text(age))
        elif self.bucket_volumes is not None:
            stored = {entry.get("name"): entry for entry in self.bucket.get("system_backups") or []}
            entry = stored.get(name)
            if entry is None:
                self.add("system_backup", subject,
                         "Ready in the cluster but not in the bucket (the bucket has: %s)" % (_names(sorted(stored)) or "none"))
            else:
                self.check_stored_system_backup(subject, entry)
        return {"name": name, "created_at": ready.get("created_at"), "age_seconds": age}

    def check_stored_system_backup(self, subject, entry):
        """The bucket's copy: its zip, its checksum, and the target URL a system restore will download it from."""
        if entry.get("checksum") == "missing_zip":
            self.add("system_backup", subject, "its system-backup.zip is missing from the bucket")
        elif entry.get("checksum") == "mismatch":
            self.add("system_backup", subject, "its system-backup.zip fails the SHA-256 checksum of its cfg (damaged)")
        recorded = entry.get("backup_target_url")
        checked = self.checked_location()
        if not recorded:
            self.add("system_backup", subject, "its system-backup.cfg records no BackupTargetURL, so a system restore "
                     "cannot download it")
        elif _store_location(recorded) != checked:
            self.add("system_backup", subject, "its system-backup.cfg records target %s, not the bucket checked (%s, path "
                     "'%s'); a system restore downloads from the recorded URL" % (recorded, checked[0], checked[1]))

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
            reasons.append("last completed backup %s is %s" % (name, self.old_text(age)))
        if failed_text and failed.get("name") != name and self.fail_on_failed_backup:
            reasons.append(failed_text)
        reasons.extend(self.bucket_reasons(volume, completed))
        return reasons

    def bucket_reasons(self, volume, completed):
        """Whether the completed backup (or a newer complete one) is in the bucket, and whether the backup a restore
        would use (the bucket's newest complete one) is intact."""
        name = completed.get("name")
        if self.bucket_volumes is None:
            return ["cannot confirm that backup %s is in the bucket (%s)" % (name, self.bucket_problem)]
        entry = self.bucket_volumes.get(volume.get("name"))
        if not entry or not entry.get("last_backup_name"):
            return ["backup %s is not in the bucket (the bucket has no complete backup of this volume)" % name]
        counted = entry["last_backup_name"]
        if counted != name:
            # Both times are Longhorn's snapshot times (volume.cfg LastBackupAt, ref §3.3), so they compare.
            ours = _utc(completed.get("snapshot_created_at")) or _utc(completed.get("created_at"))
            theirs = _utc(entry.get("last_backup_at"))
            if ours is None or theirs is None or theirs <= ours or self.too_old(entry.get("last_backup_age")):
                age = entry.get("last_backup_age")
                return ["backup %s is not in the bucket (bucket's newest: %s, %s)" % (
                    name, counted, self.old_text(age) if age is not None and age < -self.future_tolerance
                    else "%s old" % human_age(age) if age is not None else "of unknown age")]
        elif entry.get("last_backup_age") is not None and entry["last_backup_age"] < -self.future_tolerance:
            return ["backup %s in the bucket is %s" % (counted, self.old_text(entry["last_backup_age"]))]
        return self.block_reasons(entry, counted)

    def block_reasons(self, entry, counted):
        """The backup a restore uses: its cfg readable and, unless opted out, every block it references present."""
        reasons = []
        if counted in (entry.get("unreadable_backups") or []):
            reasons.append("backup %s cannot be restored: its backup cfg in the bucket cannot be read" % counted)
        if not self.block_check:
            return reasons
        if self.blocks_problem is not None:
            reasons.append("cannot confirm that the blocks of backup %s are in the bucket (%s)" % (counted, self.blocks_problem))
            return reasons
        if not entry.get("integrity_checked"):
            reasons.append("cannot confirm that the blocks of backup %s are in the bucket (the bucket check did not read "
                           "all of this volume's backup cfgs)" % counted)
            return reasons
        damage = {item.get("backup"): item for item in entry.get("damaged_backups") or []}.get(counted)
        if damage:
            parts = []
            if damage.get("missing_blocks"):
                parts.append("%d block(s) missing from the bucket" % damage["missing_blocks"])
            if damage.get("corrupt_blocks"):
                parts.append("%d corrupt block(s)" % damage["corrupt_blocks"])
            reasons.append("backup %s cannot be restored: %s" % (counted, " and ".join(parts) or "damaged"))
        return reasons

    # ---- everything -----------------------------------------------------------------------
    def run(self):
        result = {"passed": False, "max_age": self.max_age, "max_age_text": self.max_age_text, "evaluated_at": _iso(self.now),
                  "findings": self.findings, "unprotected_volumes": [], "protected_volumes": [], "unbound_volumes": [],
                  "unclaimed_volumes": [], "waivers": self.waivers,
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
        self.findings.sort(key=lambda item: item["scope"] not in ("volume", "unclaimed_volume"))
        result["passed"] = not self.findings
        result["messages"] = ["%s: %s" % (item["subject"], item["reason"]) for item in self.findings]
        result["report"] = self.report(result)
        result["summary"] = self.summary(result)
        return result

    def evaluate_volume(self, volume, result):
        name = volume.get("name")
        pvc = _pvc(volume)
        if not _is_bound(volume):
            self.evaluate_unclaimed(volume, result)
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

    def evaluate_unclaimed(self, volume, result):
        """No PVC claims it: it blocks only when it holds data that no fresh, restorable backup has."""
        name = volume.get("name")
        pvc = _pvc(volume)
        gone = " (PVC %s is gone)" % pvc if pvc else ""
        size = volume.get("actual_size")
        entry = {"volume": name, "state": volume.get("state"), "pvc": pvc, "actual_size": size}
        if not _holds_data(volume):
            entry["note"] = "not bound to a PVC%s and holds no data; reported, not required" % gone
            result["unbound_volumes"].append(entry)
            return
        reasons = self.volume_reasons(volume)
        if not reasons:
            entry["note"] = "not bound to a PVC%s; holds data and has a fresh, restorable backup" % gone
            result["unbound_volumes"].append(entry)
            return
        accepted = name in self.accepted
        result["unclaimed_volumes"].append({"volume": name, "pvc": pvc, "actual_size": size, "reasons": reasons,
                                            "accepted": accepted})
        held = "%d bytes" % size if size is not None else "an unknown amount of data"
        if accepted:
            entry["note"] = "not bound to a PVC%s; holds %s without a fresh backup; ACCEPTED by the user" % (gone, held)
            result["unbound_volumes"].append(entry)
            self.waivers.append("unclaimed volume %s accepted (accepted_unclaimed_volumes): it holds %s that is lost on "
                                "teardown (%s)" % (name, held, "; ".join(reasons)))
            return
        self.add("unclaimed_volume", "unclaimed volume %s%s" % (name, gone),
                 "no PVC claims it, it holds %s, and it would be lost on teardown: %s. Back it up, delete it, or accept "
                 "its loss by naming it in accepted_unclaimed_volumes" % (held, "; ".join(reasons)))

    def report(self, result):
        bound = len(result["unprotected_volumes"]) + len(result["protected_volumes"])
        others = [item for item in self.findings if item["scope"] not in ("volume", "unclaimed_volume")]
        at_risk = [entry for entry in result["unclaimed_volumes"] if not entry["accepted"]]
        lines = ["Backup gate %s (max_age %s): %s, %s%d other finding(s)" % (
            "PASSED" if result["passed"] else "REFUSED", self.max_age_text,
            "%d of %d bound volume(s) unprotected" % (len(result["unprotected_volumes"]), bound) if result["volumes_checked"]
            else "volumes unknown", "%d unclaimed volume(s) holding data at risk, " % len(at_risk) if at_risk else "",
            len(others))]
        if result["unprotected_volumes"]:
            lines.append("Unprotected volumes:")
            for entry in result["unprotected_volumes"]:
                lines.append("  - %s (%s): %s" % (entry["pvc"], entry["volume"], "; ".join(entry["reasons"])))
        if at_risk:
            lines.append("Unclaimed volumes holding data (no PVC, lost on teardown):")
            for entry in at_risk:
                size = entry["actual_size"] if entry["actual_size"] is not None else "unknown"
                lines.append("  - %s (%s bytes): %s" % (entry["volume"], size, "; ".join(entry["reasons"])))
        if others:
            lines.append("Other findings:")
            for item in others:
                lines.append("  - %s: %s" % (item["subject"], item["reason"]))
        if self.waivers:
            lines.append("Waived by the user (printed and logged):")
            lines.extend("  - %s" % waiver for waiver in self.waivers)
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
            return "Backup gate passed: %d bound volume(s) protected, system backup %s, cluster state exported at %s (max_age %s)%s" % (
                len(result["protected_volumes"]), (result["system_backup"] or {}).get("name"),
                (result["cluster_state"] or {}).get("exported_at"), self.max_age_text,
                "; WAIVED: %s" % "; ".join(self.waivers) if self.waivers else "")
        parts = []
        if result["unprotected_volumes"]:
            parts.append("%d unprotected volume(s): %s" % (len(result["unprotected_volumes"]), "; ".join(
                "%s (%s): %s" % (entry["pvc"], entry["volume"], ", ".join(entry["reasons"])) for entry in result["unprotected_volumes"])))
        parts.extend("%s: %s" % (item["subject"], item["reason"]) for item in self.findings if item["scope"] != "volume")
        return "Backup gate refused (max_age %s): %s" % (self.max_age_text, "; ".join(parts))


def backup_gate_findings(info, bucket=None, cluster_state=None, cluster_state_location=None, max_age="24h",
                         fail_on_failed_backup=True, now=None, block_check=True, accepted_unclaimed_volumes=None,
                         future_tolerance=FUTURE_TOLERANCE_SECONDS):
    """See DOCUMENTATION."""
    return Gate(info, bucket=bucket, cluster_state=cluster_state, cluster_state_location=cluster_state_location,
                max_age=max_age, fail_on_failed_backup=fail_on_failed_backup, now=now, block_check=block_check,
                accepted_unclaimed_volumes=accepted_unclaimed_volumes, future_tolerance=future_tolerance).run()


class FilterModule:
    """homelab.longhorn_dr.backup_gate_findings"""

    def filters(self):
        return {"backup_gate_findings": backup_gate_findings}
