# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import json
import re
from base64 import b64decode
from urllib.parse import parse_qs, urlsplit

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - ansible-core is always there on a controller
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

CLUSTER_STATE_FORMAT = "homelab.longhorn_dr/cluster-state/v1"
LONGHORN_DRIVER = "driver.longhorn.io"
# Annotations that record where a volume came from (longhorn_volume_restore, a system restore).
RESTORED_FROM_ANNOTATION = "longhorn-dr.homelab/restored-from"
SYSTEM_RESTORED_ANNOTATION = "longhorn.io/last-system-restored-backup"
# Written by the restore_app role: which claim a new volume is for, and which volume it replaces.
CLAIM_ANNOTATION = "longhorn-dr.homelab/restore-app-claim"
REPLACES_ANNOTATION = "longhorn-dr.homelab/restore-app-replaces"
REPLICAS_ANNOTATION = "longhorn-dr.homelab/restore-app-replicas"
LABEL_BACKUP_VOLUME = "backup-volume"  # ref §1.3
OK = "OK"
WARN = "WARN"
FAIL = "FAIL"
SHOWN_OUTPUT = 120
# Longhorn refuses volume names of 40 characters or more; restore names are at most this long.
MAX_VOLUME_NAME = 39
# Generated pod name suffixes (k8s.io/apimachinery/pkg/util/rand alphabet): <rs hash>-<5 chars>.
_POD_SUFFIX = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{5}$")
_RS_HASH = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{6,10}$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def as_list(value):
    """A list from a list, or from a comma-separated string as ``-e key=a,b`` gives it."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def _parse_time(value):
    if not value:
        return None
    try:
        return datetime.datetime.strptime(str(value).replace("Z", "+00:00")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise AnsibleFilterError("not an RFC 3339 time: %r" % (value,)) from None


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _key(namespace, name):
    return "%s/%s" % (namespace, name)


def _short(text, limit=SHOWN_OUTPUT):
    text = "" if text is None else str(text).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def backup_url_parts(url):
    """(backup, volume) of a backup URL (ref §4: ...?backup=<name>&volume=<volume>); None when it names neither."""
    if not url:
        return None
    query = parse_qs(urlsplit(str(url)).query)
    backup = (query.get("backup") or [None])[0]
    volume = (query.get("volume") or [None])[0]
    return (backup, volume) if backup or volume else None


def restored_from(volume):
    """(backup, source volume) a volume was restored from, or None: our annotation, a system restore's, spec.fromBackup."""
    annotations = _meta(volume).get("annotations") or {}
    for url in (annotations.get(RESTORED_FROM_ANNOTATION), annotations.get(SYSTEM_RESTORED_ANNOTATION),
                (volume.get("spec") or {}).get("fromBackup")):
        parts = backup_url_parts(url)
        if parts:
            return parts
    return None


def load_manifest(manifest, location="manifest.json"):
    """The cluster-state manifest from a dict, JSON text or an ansible.builtin.slurp result; AnsibleFilterError names the problem."""
    if manifest is None:
        return None
    if isinstance(manifest, dict) and "format" not in manifest and ("content" in manifest or manifest.get("failed")):
        if manifest.get("failed") or "content" not in manifest:
            raise AnsibleFilterError("cannot read the cluster-state manifest %s: %s" % (location, manifest.get("msg") or "read failed"))
        try:
            manifest = b64decode(manifest["content"]).decode("utf-8")
        except (ValueError, TypeError) as exc:
            raise AnsibleFilterError("cluster-state manifest %s is not base64: %s" % (location, exc)) from None
    if isinstance(manifest, (str, bytes)):
        try:
            manifest = json.loads(manifest)
        except ValueError as exc:
            raise AnsibleFilterError("cluster-state manifest %s is not JSON: %s" % (location, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != CLUSTER_STATE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise AnsibleFilterError("%s is not a cluster-state manifest (format %r, expected %r)" % (location, found, CLUSTER_STATE_FORMAT))
    return manifest


# ---- tolerance and comparison ---------------------------------------------------------------

def parse_tolerance(value, option="tolerance"):
    """(amount, percent?) from a number or a string such as ``5``, ``2.5`` or ``1%``; ``""``/None/0 mean exact."""
    if value is None or value == "" or value is False:
        return 0.0, False
    text = str(value).strip()
    percent = text.endswith("%")
    number = text[:-1].strip() if percent else text
    if not _NUMBER.match(number) or float(number) < 0:
        raise AnsibleFilterError("%s %r is neither a non-negative number (10) nor a percentage such as 5%%" % (option, value))
    return float(number), percent


def _as_number(text):
    text = "" if text is None else str(text).strip()
    return float(text) if _NUMBER.match(text) else None


def _fmt_number(value):
    return str(int(value)) if float(value).is_integer() else repr(value)


def compare(actual, expected=None, expect_number=None, tolerance=None):
    """(ok, reason) for one check's stdout against ``expected`` text or ``expect_number`` (± tolerance).

    Text compares without surrounding whitespace. With ``expect_number``, or when ``expected`` and the output are both
    numbers, the difference may be up to the tolerance: an absolute amount, or a percentage of the expected number.
    """
    amount, percent = parse_tolerance(tolerance)
    shown = _short(actual)
    if expect_number is None and expected is not None and _as_number(expected) is not None and _as_number(actual) is not None:
        expect_number = _as_number(expected)
    if expect_number is not None:
        try:
            wanted = float(expect_number)
        except (TypeError, ValueError):
            raise AnsibleFilterError("expect_number %r is not a number" % (expect_number,)) from None
        got = _as_number(actual)
        if got is None:
            return False, "expected the number %s, got %r" % (_fmt_number(wanted), shown)
        allowed = abs(wanted) * amount / 100.0 if percent else amount
        difference = abs(got - wanted)
        window = " (tolerance %s%s)" % (_fmt_number(amount), "%" if percent else "") if amount else ""
        if difference <= allowed + 1e-9:
            if difference:
                return True, "%s, expected %s, within%s" % (_fmt_number(got), _fmt_number(wanted), window)
            return True, "%s as expected" % _fmt_number(got)
        return False, "%s, expected %s%s: off by %s" % (_fmt_number(got), _fmt_number(wanted), window, _fmt_number(difference))
    wanted = "" if expected is None else str(expected).strip()
    if (actual or "").strip() == wanted:
        return True, "output %r as expected" % _short(wanted)
    return False, "output %r, expected %r" % (shown, _short(wanted))


# ---- the checks to run (verify_restore_plan) ---------------------------------------------------

def _pod_ready(pod):
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or _meta(pod).get("deletionTimestamp"):
        return False
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return conditions.get("Ready", "True") == "True"


def _matches_previous(pod, previous):
    """Whether ``pod`` replaced ``previous`` (the pod a baseline ran in, gone after a restore).

    A StatefulSet pod keeps its name. A Deployment pod is <deployment>-<ReplicaSet hash>-<suffix>: the ReplicaSet
    hash stays when only the replicas change, so the new pod shares the prefix; after a template change only the
    deployment name is shared.
    """
    name = _meta(pod).get("name") or ""
    if name == previous:
        return 2
    parts = previous.split("-")
    if len(parts) >= 3 and _POD_SUFFIX.match(parts[-1]) and _RS_HASH.match(parts[-2]):
        mine = name.split("-")
        if len(mine) == len(parts) and mine[:-1] == parts[:-1] and _POD_SUFFIX.match(mine[-1]):
            return 1
        if len(mine) == len(parts) and mine[:-2] == parts[:-2] and _RS_HASH.match(mine[-2]) and _POD_SUFFIX.match(mine[-1]):
            return 0.5
    elif len(parts) >= 2 and _POD_SUFFIX.match(parts[-1]):  # a DaemonSet/Job style <name>-<suffix>
        mine = name.split("-")
        if len(mine) == len(parts) and mine[:-1] == parts[:-1] and _POD_SUFFIX.match(mine[-1]):
            return 1
    return 0


def _selector_matches(pod, selector):
    """A subset of label selector syntax: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, comma-separated."""
    labels = _meta(pod).get("labels") or {}
    for term in [t.strip() for t in str(selector).split(",") if t.strip()]:
        if "!=" in term:
            key, value = [p.strip() for p in term.split("!=", 1)]
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = [p.strip() for p in term.replace("==", "=").split("=", 1)]
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _pick_pod(item, pods):
    """(pod name, how it was found) or (None, why not) for one check."""
    namespace = item["namespace"]
    mine = [p for p in pods if _meta(p).get("namespace", namespace) == namespace]
    ready = sorted((p for p in mine if _pod_ready(p)), key=lambda p: _meta(p).get("name"))
    if item.get("label_selector"):
        chosen = [p for p in ready if _selector_matches(p, item["label_selector"])]
        if chosen:
            return _meta(chosen[0]).get("name"), "label selector %s" % item["label_selector"]
        return None, "no Running and Ready pod matches label selector %r in namespace %s" % (item["label_selector"], namespace)
    if item.get("pod") and item.get("source") == "check":
        if any(_meta(p).get("name") == item["pod"] for p in ready):
            return item["pod"], "pod"
        return None, "pod %s/%s is not Running and Ready" % (namespace, item["pod"])
    previous = item.get("pod") or ""
    scored = [(score, _meta(p).get("name")) for p in ready for score in [_matches_previous(p, previous)] if score]
    if scored:
        best = max(score for score, _name in scored)
        name = sorted(n for s, n in scored if s == best)[0]
        return name, "pod %s at backup time" % previous if name == previous else "replacement of pod %s" % previous
    return None, ("no Running and Ready pod in namespace %s replaces pod %s, where the baseline ran; record the baseline "
                  "with a label_selector or give verify_restore_baseline_selectors" % (namespace, previous))


def verify_restore_plan(manifest=None, checks=None, use_baselines=True, tolerance=None, namespaces=None, expected_pvcs=None,
                        baseline_selectors=None, pods=None, manifest_location="manifest.json", option_prefix=""):
    """What verify_restore checks: ``expected_pvcs`` and ``checks`` (each with ``pod`` to run in, or ``error``).

    ``manifest`` is the cluster-state manifest (dict, JSON or slurp result) or None. ``pods`` are the registered loop
    result of k8s_info over ``namespaces_to_list`` (or a plain list of pods); without it, no pod is picked yet.
    """
    wanted_ns = set(as_list(namespaces))
    errors = []
    try:
        data = load_manifest(manifest, manifest_location)
    except AnsibleFilterError as exc:
        errors.append(str(exc))
        data = None
    if data is not None and wanted_ns:
        # A namespace the export does not know would silently verify nothing of it.
        known = {e.get("pvc_namespace") for e in data.get("volumes") or [] if e.get("pvc_namespace")}
        known |= {b.get("namespace") for b in data.get("baselines") or [] if b.get("namespace")}
        unknown = sorted(wanted_ns - known)
        if unknown:
            raise AnsibleFilterError("%snamespaces: unknown namespace %s in the cluster-state export %s (known: %s)" % (
                option_prefix, ", ".join("'%s'" % n for n in unknown), manifest_location, ", ".join(sorted(known)) or "none"))
    claims, seen = [], set()
    for entry in (data or {}).get("volumes") or []:
        if not (entry.get("pvc_namespace") and entry.get("pvc_name")):
            continue
        if wanted_ns and entry["pvc_namespace"] not in wanted_ns:
            continue
        seen.add(_key(entry["pvc_namespace"], entry["pvc_name"]))
        claims.append({"namespace": entry["pvc_namespace"], "name": entry["pvc_name"], "volume": entry.get("volume"),
                       "source": "manifest"})
    for entry in expected_pvcs or []:
        if not isinstance(entry, dict) or not entry.get("namespace") or not entry.get("name"):
            raise AnsibleFilterError("%sexpected_pvcs: each entry needs namespace and name (got %r)" % (option_prefix, entry))
        key = _key(entry["namespace"], entry["name"])
        claims = [c for c in claims if _key(c["namespace"], c["name"]) != key]
        seen.add(key)
        claims.append({"namespace": entry["namespace"], "name": entry["name"], "volume": entry.get("volume") or None, "source": "expected"})
    claims.sort(key=lambda c: (c["namespace"], c["name"]))

    default_tolerance = tolerance
    parse_tolerance(default_tolerance, option_prefix + "tolerance")
    items = []
    if use_baselines:
        for baseline in (data or {}).get("baselines") or []:
            if wanted_ns and baseline.get("namespace") not in wanted_ns:
                continue
            if baseline.get("rc") not in (0, "0", None):
                errors.append("baseline %s was recorded with rc=%s; it cannot be compared" % (baseline.get("name"), baseline.get("rc")))
                continue
            items.append({
                "name": baseline.get("name"), "source": "baseline", "namespace": baseline.get("namespace"),
                "label_selector": (baseline_selectors or {}).get(baseline.get("name")) or baseline.get("label_selector") or None,
                "pod": baseline.get("pod") or None, "container": baseline.get("container") or None,
                "command": baseline.get("command"), "expect": baseline.get("stdout") or "", "expect_number": None,
                "tolerance": default_tolerance,
            })
    for index, check in enumerate(checks or []):
        if not isinstance(check, dict) or not check.get("name") or not check.get("namespace") or not check.get("command"):
            raise AnsibleFilterError("%schecks[%d]: each check needs name, namespace and command (got %r)" % (option_prefix, index, check))
        where = "%schecks[%d] (%s)" % (option_prefix, index, check["name"])
        if bool(check.get("pod")) == bool(check.get("label_selector")):
            raise AnsibleFilterError("%s: give exactly one of pod or label_selector (got pod %r, label_selector %r)"
                                     % (where, check.get("pod"), check.get("label_selector")))
        if check.get("expect") is None and check.get("expect_number") is None:
            raise AnsibleFilterError("%s: give expect (text) or expect_number (a number); neither is set" % where)
        if check.get("expect_number") is not None and _as_number(check["expect_number"]) is None:
            raise AnsibleFilterError("%s: expect_number %r is not a number" % (where, check["expect_number"]))
        tol = check.get("tolerance", default_tolerance)
        parse_tolerance(tol, where + ": tolerance" if "tolerance" in check else option_prefix + "tolerance")
        items.append({
            "name": check["name"], "source": "check", "namespace": check["namespace"],
            "label_selector": check.get("label_selector") or None, "pod": check.get("pod") or None,
            "container": check.get("container") or None, "command": check["command"],
            "expect": None if check.get("expect") is None else str(check["expect"]),
            "expect_number": check.get("expect_number"), "tolerance": tol,
        })
    names = [i["name"] for i in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AnsibleFilterError("%schecks: names must be unique among the checks and the baselines; used twice: %s"
                                 % (option_prefix, ", ".join(map(str, duplicates))))

    if pods is not None:
        listed = []
        for result in pods or []:
            if isinstance(result, dict) and "resources" in result:
                listed.extend(result.get("resources") or [])
            elif isinstance(result, dict) and "metadata" in result:
                listed.append(result)
        for item in items:
            pod, how = _pick_pod(item, listed)
            item["target_pod"] = pod
            item["error"] = None if pod else how
            item["found_by"] = how if pod else None
    return {
        "expected_pvcs": claims,
        "checks": items,
        "namespaces_to_list": sorted({i["namespace"] for i in items}),
        "errors": errors,
        "exported_at": (data or {}).get("exported_at"),
    }


# ---- the verdict (verify_report) ----------------------------------------------------------------

def _volume_verdict(volume):
    status = volume.get("status") or {}
    state, robustness = status.get("state") or "unknown", status.get("robustness") or "unknown"
    entry = {"name": _meta(volume).get("name"), "state": state, "robustness": robustness}
    if robustness == "faulted":
        return dict(entry, status=FAIL, reason="faulted (state %s)" % state)
    if status.get("restoreRequired"):
        return dict(entry, status=FAIL, reason="still restoring (restoreRequired, state %s)" % state)
    if state == "attached":
        if robustness == "healthy":
            return dict(entry, status=OK, reason="attached, healthy")
        if robustness == "degraded":
            return dict(entry, status=WARN, reason="attached, degraded: fewer healthy replicas than wanted")
        return dict(entry, status=FAIL, reason="attached, robustness %s" % robustness)
    # ref §1.5: a detached volume has robustness unknown; only faulted is bad.
    return dict(entry, status=OK, reason="%s, robustness %s (not faulted)" % (state, robustness))


def _claim_verdict(claim, pvcs, pvs, volumes):
    key = _key(claim["namespace"], claim["name"])
    entry = {"namespace": claim["namespace"], "name": claim["name"], "pv": None, "volume": None,
             "expected_volume": claim.get("volume")}
    pvc = pvcs.get(key)
    if pvc is None:
        return dict(entry, status=FAIL, reason="PVC %s does not exist" % key)
    phase = (pvc.get("status") or {}).get("phase") or "unknown"
    pv_name = (pvc.get("spec") or {}).get("volumeName")
    entry["pv"] = pv_name
    if phase != "Bound" or not pv_name:
        return dict(entry, status=FAIL, reason="PVC %s is %s, not Bound" % (key, phase))
    pv = pvs.get(pv_name)
    if pv is None:
        return dict(entry, status=FAIL, reason="PVC %s is bound to PV %s, which does not exist" % (key, pv_name))
    csi = (pv.get("spec") or {}).get("csi") or {}
    if csi.get("driver") != LONGHORN_DRIVER:
        return dict(entry, status=FAIL, reason="PVC %s is bound to PV %s, which is not a Longhorn volume" % (key, pv_name))
    volume_name = csi.get("volumeHandle")
    entry["volume"] = volume_name
    volume = volumes.get(volume_name)
    if volume is None:
        return dict(entry, status=FAIL, reason="PVC %s is bound to PV %s for volume %s, which does not exist" % (key, pv_name, volume_name))
    wanted = claim.get("volume")
    if not wanted or wanted == volume_name:
        return dict(entry, status=OK, reason="Bound to PV %s, volume %s" % (pv_name, volume_name))
    origin = restored_from(volume)
    if origin and origin[1] == wanted:
        return dict(entry, status=OK, reason="Bound to PV %s, volume %s restored from backup %s of volume %s" % (pv_name, volume_name, origin[0], wanted))
    # A volume restore_app made from a restored one still names the original it replaces.
    if (_meta(volume).get("annotations") or {}).get(REPLACES_ANNOTATION) == wanted:
        return dict(entry, status=OK, reason="Bound to PV %s, volume %s (restore of %s)" % (pv_name, volume_name, wanted))
    return dict(entry, status=FAIL, reason="PVC %s is bound to volume %s, which is neither %s nor restored from its backup%s"
                % (key, volume_name, wanted, " (it was restored from volume %s)" % origin[1] if origin else " (a fresh volume?)"))


def _workload_verdict(result):
    spec_item = result.get("item") or {}
    entry = {"kind": spec_item.get("kind"), "namespace": spec_item.get("namespace"), "name": spec_item.get("name"),
             "ready": None, "desired": None}
    where = "%s %s/%s" % (entry["kind"], entry["namespace"], entry["name"])
    resources = result.get("resources") or []
    if result.get("failed") and not resources:
        return dict(entry, status=FAIL, reason="cannot read %s: %s" % (where, _short(result.get("msg") or "unknown error", 300)))
    if not resources:
        return dict(entry, status=FAIL, reason="%s does not exist" % where)
    obj = resources[0]
    status = obj.get("status") or {}
    kind = entry["kind"] or obj.get("kind")
    if kind == "DaemonSet":
        desired, ready = status.get("desiredNumberScheduled") or 0, status.get("numberReady") or 0
    else:
        spec_replicas = (obj.get("spec") or {}).get("replicas")
        desired, ready = (1 if spec_replicas is None else spec_replicas), status.get("readyReplicas") or 0
    entry.update(ready=ready, desired=desired)
    if desired == 0:
        return dict(entry, status=FAIL, reason="%s is scaled to 0" % where)
    if ready < desired:
        return dict(entry, status=FAIL, reason="%s has %d of %d replicas ready%s" % (
            where, ready, desired, " (timed out waiting)" if result.get("failed") or result.get("msg") else ""))
    return dict(entry, status=OK, reason="%d/%d replicas ready" % (ready, desired))


def _check_verdict(result):
    item = result.get("item") or {}
    entry = {"name": item.get("name"), "source": item.get("source"), "namespace": item.get("namespace"),
             "pod": item.get("target_pod"), "command": item.get("command"),
             "expected": _fmt_number(float(item["expect_number"])) if item.get("expect_number") is not None else _short(item.get("expect")),
             "actual": None, "rc": None}
    if item.get("error") or result.get("skipped"):
        return dict(entry, status=FAIL, reason=item.get("error") or "not run")
    rc = result.get("rc")
    entry.update(actual=_short(result.get("stdout")), rc=rc)
    if rc is None:
        return dict(entry, status=FAIL, reason="could not run in pod %s: %s" % (entry["pod"], _short(result.get("msg") or "no result", 300)))
    if rc != 0:
        return dict(entry, status=FAIL, reason="exit code %s in pod %s: %s" % (rc, entry["pod"], _short(result.get("stderr") or result.get("stdout"))))
    ok, why = compare(result.get("stdout"), expected=item.get("expect"), expect_number=item.get("expect_number"), tolerance=item.get("tolerance"))
    return dict(entry, status=OK if ok else FAIL, reason="%s (pod %s)" % (why, entry["pod"]))


def verify_report(pvcs, pvs=None, volumes=None, expected_pvcs=None, workloads=None, checks=None, errors=None, now=None):
    """See DOCUMENTATION."""
    moment = _parse_time(now) if now else _utc_now()
    by_pvc = {_key(_meta(p).get("namespace"), _meta(p).get("name")): p for p in pvcs or []}
    by_pv = {_meta(p).get("name"): p for p in pvs or []}
    by_volume = {_meta(v).get("name"): v for v in volumes or []}
    claim_entries = [_claim_verdict(c, by_pvc, by_pv, by_volume) for c in expected_pvcs or []]
    volume_names = sorted({c["volume"] for c in claim_entries if c["volume"] and c["volume"] in by_volume})
    volume_entries = [_volume_verdict(by_volume[name]) for name in volume_names]
    workload_entries = [_workload_verdict(r) for r in workloads or [] if isinstance(r, dict)]
    check_entries = [_check_verdict(r) for r in checks or [] if isinstance(r, dict)]
    errors = [str(e) for e in errors or []]

    report = []
    for entry in claim_entries:
        report.append("%-4s PVC %s/%s: %s" % (entry["status"], entry["namespace"], entry["name"], entry["reason"]))
    for entry in volume_entries:
        report.append("%-4s volume %s: %s" % (entry["status"], entry["name"], entry["reason"]))
    for entry in workload_entries:
        report.append("%-4s %s %s/%s: %s" % (entry["status"], entry["kind"], entry["namespace"], entry["name"], entry["reason"]))
    for entry in check_entries:
        report.append("%-4s %s %s (%s): %s" % (entry["status"], entry["source"], entry["name"], entry["namespace"], entry["reason"]))
    for error in errors:
        report.append("FAIL %s" % error)
    every = claim_entries + volume_entries + workload_entries + check_entries
    counts = {"ok": sum(e["status"] == OK for e in every), "warn": sum(e["status"] == WARN for e in every),
              "fail": sum(e["status"] == FAIL for e in every) + len(errors)}
    failures = [line[5:] for line in report if line.startswith(FAIL)]
    if not every and not errors:
        failures.append("nothing to verify: no expected PVC, workload, check or baseline")
        counts["fail"] += 1
        report.append("FAIL nothing to verify: no expected PVC, workload, check or baseline")
    passed = counts["fail"] == 0
    head = "%d OK, %d warning(s), %d failure(s)" % (counts["ok"], counts["warn"], counts["fail"])
    summary = ("Restore verified: " + head) if passed else ("Restore verification FAILED (%s): %s" % (head, "; ".join(failures)))
    return {"passed": passed, "summary": summary, "report": report, "counts": counts, "pvcs": claim_entries,
            "volumes": volume_entries, "workloads": workload_entries, "checks": check_entries, "errors": errors,
            "verified_at": _iso(moment)}


# ---- the single-app restore plan (restore_app_plan) ----------------------------------------------

def restore_volume_name(claim, moment):
    """A new volume name for ``claim``: the claim's name (as a DNS label) plus -r<YYMMDDHHMMSS>, at most 39 characters."""
    base = re.sub(r"[^a-z0-9-]+", "-", str(claim).lower()).strip("-") or "restore"
    suffix = "-r" + moment.strftime("%y%m%d%H%M%S")
    base = base[:MAX_VOLUME_NAME - len(suffix)].rstrip("-") or "restore"
    if not base[0].isalpha():
        base = ("v" + base)[:MAX_VOLUME_NAME - len(suffix)].rstrip("-")
    return base + suffix


def _backup_volume(backup):
    return (_meta(backup).get("labels") or {}).get(LABEL_BACKUP_VOLUME) or (backup.get("status") or {}).get("volumeName") or ""


def _backup_time(backup):
    status = backup.get("status") or {}
    return status.get("backupCreatedAt") or status.get("snapshotCreatedAt") or ""


def _completed(backup):
    return (backup.get("status") or {}).get("state") == "Completed"


def _claim_names(template_spec):
    return {v["persistentVolumeClaim"]["claimName"] for v in (template_spec or {}).get("volumes") or []
            if isinstance(v, dict) and (v.get("persistentVolumeClaim") or {}).get("claimName")}


def _mounts_claim(workload, claims):
    spec = workload.get("spec") or {}
    if _claim_names(((spec.get("template") or {}).get("spec"))) & set(claims):
        return True
    if workload.get("kind") == "StatefulSet":
        name = _meta(workload).get("name")
        for template in spec.get("volumeClaimTemplates") or []:
            pattern = re.compile(r"^%s-%s-\d+$" % (re.escape(_meta(template).get("name") or ""), re.escape(name or "")))
            if any(pattern.match(c) for c in claims):
                return True
    return False


def restore_app_plan(claims, namespace, pvcs=None, pvs=None, volumes=None, backups=None, workloads=None,
                     explicit_workloads=None, backup=None, number_of_replicas=None, now=None):
    """The single-app restore plan: per claim what to restore from and into, and the workloads to stop.

    Returns ``{"claims": [...], "workloads": [...], "errors": [...], "plan": [lines]}``. Each claim has ``state``:
    ``restore`` (start), ``resume`` (a new volume from an interrupted run exists) or ``done`` (already bound to a
    volume restored from the chosen backup). Workloads found by kind/name in ``workloads`` (Deployments and
    StatefulSets of the namespace); without ``explicit_workloads``, those whose pods mount one of the claims.
    """
    moment = _parse_time(now) if now else _utc_now()
    claims = as_list(claims)
    by_pvc = {_meta(p).get("name"): p for p in pvcs or [] if _meta(p).get("namespace", namespace) == namespace}
    by_pv = {_meta(p).get("name"): p for p in pvs or []}
    pv_by_volume = {((p.get("spec") or {}).get("csi") or {}).get("volumeHandle"): p for p in pvs or []
                    if ((p.get("spec") or {}).get("csi") or {}).get("driver") == LONGHORN_DRIVER}
    by_volume = {_meta(v).get("name"): v for v in volumes or []}
    all_backups = list(backups or [])
    errors, entries = [], []

    def newest(volume_name):
        done = [b for b in all_backups if _backup_volume(b) == volume_name and _completed(b)]
        return max(done, key=lambda b: (_backup_time(b), _meta(b).get("name"))) if done else None

    for claim in claims or []:
        key = _key(namespace, claim)
        pvc = by_pvc.get(claim)
        entry = {"pvc_namespace": namespace, "pvc_name": claim, "pvc_exists": pvc is not None, "state": None,
                 "current_pv": None, "current_volume": None, "pv_reclaim_policy": None, "storage_class": None,
                 "source_volume": None, "backup": None, "backup_url": None, "backup_created_at": None,
                 "new_volume": None, "new_volume_exists": False, "number_of_replicas": None, "old_pv_to_delete": None}
        entries.append(entry)
        # A volume an earlier, interrupted run restored for this claim: annotated by restore_app, without a PV yet.
        pending = sorted((v for v in by_volume.values()
                          if (_meta(v).get("annotations") or {}).get(CLAIM_ANNOTATION) == key and _meta(v).get("name") not in pv_by_volume),
                         key=lambda v: _meta(v).get("creationTimestamp") or "", reverse=True)
        if pvc is not None:
            entry["storage_class"] = (pvc.get("spec") or {}).get("storageClassName")
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            pv = by_pv.get(pv_name) if pv_name else None
            csi = ((pv or {}).get("spec") or {}).get("csi") or {}
            if pv is None or csi.get("driver") != LONGHORN_DRIVER:
                if pv is not None:
                    errors.append("PVC %s is bound to PV %s, which is not a Longhorn volume" % (key, pv_name))
                else:
                    errors.append("PVC %s is not bound to a PV (phase %s)" % (key, (pvc.get("status") or {}).get("phase") or "unknown"))
                continue
            entry.update(current_pv=pv_name, current_volume=csi.get("volumeHandle"),
                         pv_reclaim_policy=(pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain",
                         old_pv_to_delete=pv_name)
        elif pending:
            volume = pending[0]
            old = (_meta(volume).get("annotations") or {}).get(REPLACES_ANNOTATION)
            entry.update(current_volume=old)
            leftover = pv_by_volume.get(old)
            if leftover is not None and ((leftover.get("spec") or {}).get("claimRef") or {}).get("name") == claim:
                entry.update(current_pv=_meta(leftover).get("name"),
                             pv_reclaim_policy=(leftover.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain",
                             old_pv_to_delete=_meta(leftover).get("name"))
        else:
            errors.append("PVC %s does not exist and no volume restored for it by an earlier run waits for it; "
                          "restore it with the restore_cluster flow instead" % key)
            continue
        current = by_volume.get(entry["current_volume"]) if entry["current_volume"] else None
        if entry["current_volume"] and current is None and pvc is not None:
            errors.append("PVC %s is bound to Longhorn volume %s, which does not exist" % (key, entry["current_volume"]))
            continue
        entry["number_of_replicas"] = number_of_replicas or ((current or {}).get("spec") or {}).get("numberOfReplicas") or None

        if pending:
            volume = pending[0]
            origin = restored_from(volume) or (None, None)
            entry.update(state="resume", new_volume=_meta(volume).get("name"), new_volume_exists=True,
                         source_volume=origin[1], backup=origin[0],
                         backup_url=(_meta(volume).get("annotations") or {}).get(RESTORED_FROM_ANNOTATION) or (volume.get("spec") or {}).get("fromBackup"))
            chosen = next((b for b in all_backups if _meta(b).get("name") == origin[0]), None)
            entry["backup_created_at"] = _backup_time(chosen) if chosen else None
            if entry["number_of_replicas"] is None:
                entry["number_of_replicas"] = (volume.get("spec") or {}).get("numberOfReplicas")
            continue

        # Which volume's backups: the current volume's own, else (a volume restored without backups of its own) its origin's.
        origin = restored_from(current) if current else None
        sources = [entry["current_volume"]] + ([origin[1]] if origin and origin[1] and origin[1] != entry["current_volume"] else [])
        if backup:
            chosen = next((b for b in all_backups if _meta(b).get("name") == backup), None)
            if chosen is None:
                errors.append("backup %s (for PVC %s) is not in the cluster" % (backup, key))
                continue
            if _backup_volume(chosen) not in sources:
                errors.append("backup %s is a backup of volume %s, not of PVC %s's volume (%s)" % (backup, _backup_volume(chosen), key, " or ".join(sources)))
                continue
            if not _completed(chosen):
                errors.append("backup %s is %s, not Completed" % (backup, (chosen.get("status") or {}).get("state") or "not synced yet"))
                continue
        else:
            chosen = next((b for b in (newest(s) for s in sources) if b is not None), None)
            if chosen is None:
                errors.append("PVC %s: volume %s has no Completed backup in the cluster; nothing to restore from"
                              % (key, " or ".join(s for s in sources if s)))
                continue
        entry.update(source_volume=_backup_volume(chosen), backup=_meta(chosen).get("name"), backup_url=(chosen.get("status") or {}).get("url"),
                     backup_created_at=_backup_time(chosen) or None)
        if origin and origin[0] == entry["backup"]:
            entry.update(state="done", new_volume=entry["current_volume"], new_volume_exists=True, old_pv_to_delete=None)
            continue
        entry.update(state="restore", new_volume=restore_volume_name(claim, moment))

    # Workloads to stop while the claims change hands.
    found = {(w.get("kind"), _meta(w).get("name")): w for w in workloads or [] if _meta(w).get("namespace", namespace) == namespace}
    chosen_workloads = []
    if explicit_workloads:
        for spec in explicit_workloads:
            kind, name = spec.get("kind"), spec.get("name")
            if (kind, name) not in found:
                errors.append("%s %s/%s does not exist" % (kind, namespace, name))
                continue
            chosen_workloads.append(found[(kind, name)])
    else:
        chosen_workloads = [w for _k, w in sorted(found.items()) if _mounts_claim(w, claims or [])]
    workload_entries = []
    for obj in chosen_workloads:
        annotations = _meta(obj).get("annotations") or {}
        current = (obj.get("spec") or {}).get("replicas")
        current = 1 if current is None else current
        recorded = annotations.get(REPLICAS_ANNOTATION)
        workload_entries.append({"kind": obj.get("kind"), "name": _meta(obj).get("name"), "namespace": namespace,
                                 "current_replicas": current, "replicas": int(recorded) if recorded not in (None, "") else current,
                                 "recorded": recorded not in (None, "")})

    lines = []
    for entry in entries:
        where = "PVC %s/%s" % (entry["pvc_namespace"], entry["pvc_name"])
        if entry["state"] == "done":
            lines.append("%s: already bound to volume %s, restored from backup %s; nothing to restore" % (where, entry["new_volume"], entry["backup"]))
        elif entry["state"] in ("restore", "resume"):
            deletes = []
            if entry["pvc_exists"]:
                deletes.append("delete %s" % where)
            if entry["old_pv_to_delete"]:
                deletes.append("delete PV object %s%s" % (entry["old_pv_to_delete"], " after setting its reclaim policy Delete -> Retain"
                                                          if entry["pv_reclaim_policy"] == "Delete" else " (reclaim policy Retain)"))
            lines.append("%s: %s volume %s from backup %s of volume %s (%s); %s; bind the claim to the new volume; keep the old volume %s as a fallback"
                         % (where, "restore" if entry["state"] == "restore" else "resume: reuse restored", entry["new_volume"], entry["backup"],
                            entry["source_volume"], entry["backup_created_at"] or "time unknown", ", ".join(deletes) or "nothing to delete",
                            entry["current_volume"] or "(unknown)"))
    for w in workload_entries:
        lines.append("%s %s/%s: scale to 0, then back to %d" % (w["kind"], namespace, w["name"], w["replicas"]))
    lines.extend("ERROR %s" % e for e in errors)
    return {"claims": entries, "workloads": workload_entries, "errors": errors, "plan": lines,
            "work": any(e["state"] in ("restore", "resume") for e in entries), "planned_at": _iso(moment)}


def restore_app_mapping(entry, namespace, for_verify=False):
    """One claim of a restore_app plan as a longhorn_pv_from_volume ``mapping`` entry, or (``for_verify``) as a
    verify_restore expected claim that must be bound to the new volume."""
    if for_verify:
        return {"namespace": namespace, "name": entry["pvc_name"], "volume": entry["new_volume"]}
    mapping = {"volume": entry["new_volume"], "namespace": namespace, "pvc_name": entry["pvc_name"]}
    if entry.get("storage_class"):
        mapping["storage_class"] = entry["storage_class"]
    return mapping


def restore_app_objects(todo, what, namespace, longhorn_namespace="longhorn-system"):
    """Definitions for one kubernetes.core.k8s run over all claims of a restore_app plan (no per-claim loop).

    ``what``: ``mark`` (annotations for the new volumes), ``retain`` (reclaim policy Retain for old PVs whose policy is
    Delete), ``claims`` (the claims to delete) or ``pvs`` (the old PV objects to delete).
    """
    todo = list(todo or [])
    if what == "mark":
        return [{"apiVersion": "longhorn.io/v1beta2", "kind": "Volume",
                 "metadata": {"name": e["new_volume"], "namespace": longhorn_namespace,
                              "annotations": {CLAIM_ANNOTATION: _key(namespace, e["pvc_name"]), REPLACES_ANNOTATION: e.get("current_volume") or ""}}}
                for e in todo]
    if what == "retain":
        return [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": e["old_pv_to_delete"]},
                 "spec": {"persistentVolumeReclaimPolicy": "Retain"}}
                for e in todo if e.get("old_pv_to_delete") and e.get("pv_reclaim_policy") != "Retain"]
    if what == "claims":
        return [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": e["pvc_name"], "namespace": namespace}}
                for e in todo if e.get("pvc_exists")]
    if what == "pvs":
        return [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": e["old_pv_to_delete"]}}
                for e in todo if e.get("old_pv_to_delete")]
    raise AnsibleFilterError("restore_app_objects: what must be mark, retain, claims or pvs, not %r" % (what,))


class FilterModule:
    """homelab.longhorn_dr.verify_report, verify_restore_plan, restore_app_plan, restore_app_mapping, restore_app_objects"""

    def filters(self):
        return {"verify_report": verify_report, "verify_restore_plan": verify_restore_plan, "restore_app_plan": restore_app_plan,
                "restore_app_mapping": restore_app_mapping, "restore_app_objects": restore_app_objects}
