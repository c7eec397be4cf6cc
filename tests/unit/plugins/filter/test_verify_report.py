# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""verify_report, verify_restore_plan, restore_app_plan and restore_app_mapping: the restore verification and the
single-app restore plan, on objects shaped as kubernetes.core.k8s_info / k8s_exec return them."""

from __future__ import annotations

import base64
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.longhorn_dr.plugins.filter import verify_report as vr

NOW = "2026-11-22T02:15:30Z"
FORMAT = "homelab.longhorn_dr/cluster-state/v1"
URL = "s3://bucket@us-east-1/?backup=%s&volume=%s"


def pvc(name, volume_name=None, phase="Bound", namespace="apps", storage_class="longhorn"):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"volumeName": volume_name, "storageClassName": storage_class}, "status": {"phase": phase}}


def pv(name, handle, policy="Delete", driver="driver.longhorn.io", claim=None):
    spec = {"csi": {"driver": driver, "volumeHandle": handle}, "persistentVolumeReclaimPolicy": policy}
    if claim:
        spec["claimRef"] = {"namespace": "apps", "name": claim}
    return {"metadata": {"name": name}, "spec": spec}


def volume(name, state="detached", robustness="unknown", restored=None, annotations=None, replicas=3, restore_required=False, created=""):
    ann = dict(annotations or {})
    if restored:
        ann[vr.RESTORED_FROM_ANNOTATION] = URL % restored
    return {"metadata": {"name": name, "annotations": ann, "creationTimestamp": created},
            "spec": {"numberOfReplicas": replicas},
            "status": {"state": state, "robustness": robustness, "restoreRequired": restore_required}}


def backup(name, vol, created, state="Completed"):
    return {"metadata": {"name": name, "labels": {"backup-volume": vol}},
            "status": {"state": state, "backupCreatedAt": created, "url": URL % (name, vol), "volumeName": vol}}


def pod(name, namespace="apps", phase="Running", ready="True", labels=None):
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}


def manifest(volumes=(), baselines=()):
    return {"format": FORMAT, "exported_at": "2026-11-22T01:00:00Z", "volumes": list(volumes), "baselines": list(baselines)}


def baseline(name="app-rows", pod_name="app-6b5798668f-zfltm", stdout="1000\n", namespace="apps", **extra):
    return dict({"name": name, "namespace": namespace, "pod": pod_name, "container": "app", "command": "count",
                 "stdout": stdout, "stderr": "", "rc": 0}, **extra)


# ---- compare / tolerance ------------------------------------------------------------------------

@pytest.mark.parametrize("actual, kwargs, ok, reason", [
    ("1000\n", {"expected": "1000\n"}, True, "1000 as expected"),
    ("999\n", {"expected": "1000\n"}, False, "999, expected 1000: off by 1"),
    ("990", {"expect_number": 1000, "tolerance": 10}, True, "990, expected 1000, within (tolerance 10)"),
    ("989", {"expect_number": 1000, "tolerance": 10}, False, "989, expected 1000 (tolerance 10): off by 11"),
    ("1010", {"expect_number": 1000, "tolerance": "1%"}, True, "1010, expected 1000, within (tolerance 1%)"),
    ("1011", {"expect_number": 1000, "tolerance": "1%"}, False, "1011, expected 1000 (tolerance 1%): off by 11"),
    ("2.5", {"expect_number": "2.5"}, True, "2.5 as expected"),
    ("oops", {"expect_number": 1000}, False, "expected the number 1000, got 'oops'"),
    (" ok \n", {"expected": "ok"}, True, "output 'ok' as expected"),
    ("ko", {"expected": "ok"}, False, "output 'ko', expected 'ok'"),
    ("12 rows", {"expected": "12"}, False, "output '12 rows', expected '12'"),
])
def test_compare(actual, kwargs, ok, reason):
    assert vr.compare(actual, **kwargs) == (ok, reason)


@pytest.mark.parametrize("value, parsed", [(None, (0.0, False)), ("", (0.0, False)), (0, (0.0, False)), (5, (5.0, False)),
                                           ("2.5", (2.5, False)), ("5%", (5.0, True)), (" 1 % ", (1.0, True))])
def test_parse_tolerance(value, parsed):
    assert vr.parse_tolerance(value) == parsed


@pytest.mark.parametrize("value", ["-1", "five", "%", "1%%"])
def test_bad_tolerance_is_named(value):
    with pytest.raises(AnsibleFilterError, match="tolerance"):
        vr.parse_tolerance(value)


# ---- manifest --------------------------------------------------------------------------------------

def test_manifest_from_slurp_text_or_dict():
    data = manifest()
    slurped = {"content": base64.b64encode(json.dumps(data).encode()).decode(), "encoding": "base64"}
    assert vr.load_manifest(slurped) == vr.load_manifest(json.dumps(data)) == vr.load_manifest(data) == data


@pytest.mark.parametrize("value, message", [
    ({"failed": True, "msg": "file not found: /x/manifest.json"}, "cannot read the cluster-state manifest /x/manifest.json: file not found"),
    ("{", "is not JSON"),
    ({"format": "other"}, "is not a cluster-state manifest (format 'other'"),
])
def test_bad_manifest_is_named(value, message):
    with pytest.raises(AnsibleFilterError) as caught:
        vr.load_manifest(value, "/x/manifest.json")
    assert message in str(caught.value)


# ---- verify_restore_plan ----------------------------------------------------------------------------

def test_plan_merges_manifest_and_expected_claims_and_filters_namespaces():
    data = manifest(volumes=[{"volume": "pvc-a", "pvc_namespace": "apps", "pvc_name": "a"},
                             {"volume": "pvc-b", "pvc_namespace": "db", "pvc_name": "b"},
                             {"volume": "pvc-free", "pvc_namespace": None, "pvc_name": None}],
                    baselines=[baseline(), baseline(name="db-rows", namespace="db")])
    expected = [{"namespace": "apps", "name": "a", "volume": "a-r1"}, {"namespace": "apps", "name": "c"}]
    plan = vr.verify_restore_plan(data, namespaces=["apps"], expected_pvcs=expected)
    assert plan["expected_pvcs"] == [{"namespace": "apps", "name": "a", "volume": "a-r1", "source": "expected"},
                                     {"namespace": "apps", "name": "c", "volume": None, "source": "expected"}]
    assert [c["name"] for c in plan["checks"]] == ["app-rows"] and plan["namespaces_to_list"] == ["apps"]
    assert plan["errors"] == [] and "target_pod" not in plan["checks"][0]


def test_plan_reports_an_unreadable_manifest_as_an_error():
    plan = vr.verify_restore_plan({"failed": True, "msg": "missing"}, manifest_location="/dr/manifest.json")
    assert plan["errors"] == ["cannot read the cluster-state manifest /dr/manifest.json: missing"]


def test_plan_skips_baselines_that_failed_at_backup_time_and_can_ignore_baselines():
    data = manifest(baselines=[baseline(rc=1)])
    assert "recorded with rc=1" in vr.verify_restore_plan(data)["errors"][0]
    assert vr.verify_restore_plan(manifest(baselines=[baseline()]), use_baselines=False)["checks"] == []


@pytest.mark.parametrize("check, message", [
    ({"name": "x", "namespace": "apps", "command": "c", "expect": "1"}, "exactly one of pod or label_selector"),
    ({"name": "x", "namespace": "apps", "command": "c", "pod": "p", "label_selector": "a=b", "expect": "1"}, "exactly one"),
    ({"name": "x", "namespace": "apps", "command": "c", "pod": "p"}, "expect (text) or expect_number"),
    ({"name": "x", "command": "c", "pod": "p", "expect": "1"}, "needs name, namespace and command"),
    ({"name": "x", "namespace": "apps", "command": "c", "pod": "p", "expect": "1", "tolerance": "lots"}, "tolerance"),
])
def test_plan_rejects_bad_checks(check, message):
    with pytest.raises(AnsibleFilterError) as caught:
        vr.verify_restore_plan(None, checks=[check])
    assert message in str(caught.value)


def test_plan_rejects_duplicate_names_across_checks_and_baselines():
    with pytest.raises(AnsibleFilterError, match="unique.*app-rows"):
        vr.verify_restore_plan(manifest(baselines=[baseline()]),
                               checks=[{"name": "app-rows", "namespace": "apps", "pod": "p", "command": "c", "expect": "1"}])


@pytest.mark.parametrize("previous, pods, chosen", [
    # A Deployment pod: same ReplicaSet hash, new suffix.
    ("app-6b5798668f-zfltm", [pod("app-6b5798668f-svdzd"), pod("other-6b5798668f-svdzd")], "app-6b5798668f-svdzd"),
    # After a template change only the Deployment name is shared.
    ("app-6b5798668f-zfltm", [pod("app-7c4d9f8b5-x2x9q")], "app-7c4d9f8b5-x2x9q"),
    # The same ReplicaSet is preferred over another one.
    ("app-6b5798668f-zfltm", [pod("app-7c4d9f8b5-bbbbb"), pod("app-6b5798668f-ccccc")], "app-6b5798668f-ccccc"),
    # A StatefulSet pod keeps its name.
    ("db-0", [pod("db-0"), pod("db-1")], "db-0"),
    # Not ready, or in another namespace, does not count.
    ("db-0", [pod("db-0", ready="False"), pod("db-0", namespace="other")], None),
    ("app-6b5798668f-zfltm", [pod("app-data-6b5798668f")], None),
])
def test_baseline_runs_in_the_pod_that_replaced_the_recorded_one(previous, pods, chosen):
    plan = vr.verify_restore_plan(manifest(baselines=[baseline(pod_name=previous)]), pods=[{"resources": pods}])
    item = plan["checks"][0]
    assert item["target_pod"] == chosen
    if chosen is None:
        assert "replaces pod %s" % previous in item["error"] and "label_selector" in item["error"]


def test_label_selectors_pick_the_first_ready_pod_and_override_baselines():
    pods = [pod("b", labels={"app": "x"}), pod("a", labels={"app": "x"}, ready="False"), pod("c", labels={"app": "x", "tier": "db"})]
    checks = [{"name": "sel", "namespace": "apps", "label_selector": "app=x,tier!=db", "command": "c", "expect": "1"},
              {"name": "tier", "namespace": "apps", "label_selector": "tier", "command": "c", "expect": "1"},
              {"name": "none", "namespace": "apps", "label_selector": "app=y", "command": "c", "expect": "1"},
              {"name": "named", "namespace": "apps", "pod": "a", "command": "c", "expect": "1"}]
    plan = vr.verify_restore_plan(manifest(baselines=[baseline(pod_name="gone-0")]), checks=checks, pods=pods,
                                  baseline_selectors={"app-rows": "app=x"})
    picked = {c["name"]: (c["target_pod"], c["error"]) for c in plan["checks"]}
    assert picked["app-rows"] == ("b", None)
    assert picked["sel"] == ("b", None) and picked["tier"] == ("c", None)
    assert picked["none"][0] is None and "label selector 'app=y'" in picked["none"][1]
    assert picked["named"] == (None, "pod apps/a is not Running and Ready")


# ---- verify_report ------------------------------------------------------------------------------------

def claims(*entries):
    return [dict({"namespace": "apps", "volume": None}, **e) for e in entries]


def test_report_claims_volumes_workloads_and_checks():
    pvcs = [pvc("a", "pv-a"), pvc("b", "pv-b"), pvc("c", None, phase="Pending"), pvc("d", "pv-d"), pvc("e", "pv-e"), pvc("f", "pv-f")]
    pvs = [pv("pv-a", "a-r1"), pv("pv-b", "vol-b"), pv("pv-d", "nfs", driver="nfs.csi"), pv("pv-e", "vol-gone"), pv("pv-f", "fresh")]
    volumes = [volume("a-r1", restored=("backup-1", "pvc-a")), volume("vol-b", state="attached", robustness="degraded"),
               volume("fresh", state="attached", robustness="healthy")]
    expected = claims({"name": "a", "volume": "pvc-a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "e"},
                      {"name": "f", "volume": "pvc-f"}, {"name": "gone"})
    workloads = [
        {"item": {"kind": "Deployment", "namespace": "apps", "name": "ok"}, "resources": [{"spec": {"replicas": 2}, "status": {"readyReplicas": 2}}]},
        {"item": {"kind": "StatefulSet", "namespace": "apps", "name": "slow"}, "resources": [{"spec": {"replicas": 2}, "status": {"readyReplicas": 1}}]},
        {"item": {"kind": "Deployment", "namespace": "apps", "name": "zero"}, "resources": [{"spec": {"replicas": 0}, "status": {}}]},
        {"item": {"kind": "Deployment", "namespace": "apps", "name": "none"}, "resources": []},
        {"item": {"kind": "DaemonSet", "namespace": "apps", "name": "ds"},
         "resources": [{"status": {"desiredNumberScheduled": 1, "numberReady": 1}}]},
    ]
    item = {"name": "rows", "source": "baseline", "namespace": "apps", "target_pod": "p", "command": "count", "expect": "1000\n",
            "expect_number": None, "tolerance": 0, "error": None}
    checks = [
        {"item": item, "rc": 0, "stdout": "1000\n", "stderr": ""},
        {"item": dict(item, name="short"), "rc": 0, "stdout": "10\n", "stderr": ""},
        {"item": dict(item, name="crash"), "rc": 1, "stdout": "", "stderr": "no such table: t\n"},
        {"item": dict(item, name="nopod", target_pod=None, error="no Running and Ready pod ..."), "skipped": True},
    ]
    result = vr.verify_report(pvcs, pvs=pvs, volumes=volumes, expected_pvcs=expected, workloads=workloads, checks=checks,
                              errors=["baseline x was recorded with rc=1"], now=NOW)
    status = {line.split(":")[0][5:]: line[:4].strip() for line in result["report"]}
    assert status == {
        "PVC apps/a": "OK", "PVC apps/b": "OK", "PVC apps/c": "FAIL", "PVC apps/d": "FAIL", "PVC apps/e": "FAIL",
        "PVC apps/f": "FAIL", "PVC apps/gone": "FAIL", "volume a-r1": "OK", "volume fresh": "OK", "volume vol-b": "WARN",
        "Deployment apps/ok": "OK", "StatefulSet apps/slow": "FAIL", "Deployment apps/zero": "FAIL", "Deployment apps/none": "FAIL",
        "DaemonSet apps/ds": "OK", "baseline rows (apps)": "OK", "baseline short (apps)": "FAIL", "baseline crash (apps)": "FAIL",
        "baseline nopod (apps)": "FAIL", "baseline x was recorded with rc=1": "FAIL",
    }
    reasons = {e["name"]: e["reason"] for e in result["pvcs"]}
    assert reasons["a"] == "Bound to PV pv-a, volume a-r1 restored from backup backup-1 of volume pvc-a"
    assert reasons["c"] == "PVC apps/c is Pending, not Bound"
    assert reasons["d"] == "PVC apps/d is bound to PV pv-d, which is not a Longhorn volume"
    assert reasons["e"] == "PVC apps/e is bound to PV pv-e for volume vol-gone, which does not exist"
    assert reasons["f"].startswith("PVC apps/f is bound to volume fresh, which is neither pvc-f nor restored from its backup")
    check_reasons = {c["name"]: c["reason"] for c in result["checks"]}
    assert check_reasons["short"] == "10, expected 1000: off by 990 (pod p)"
    assert check_reasons["crash"] == "exit code 1 in pod p: no such table: t"
    assert result["counts"] == {"ok": 7, "warn": 1, "fail": 12}
    assert result["passed"] is False and result["verified_at"] == NOW
    assert result["summary"].startswith("Restore verification FAILED (7 OK, 1 warning(s), 12 failure(s)): PVC apps/c: ")
    assert [w["ready"] for w in result["workloads"]] == [2, 1, 0, None, 1]


@pytest.mark.parametrize("state, robustness, restore_required, expected", [
    ("detached", "unknown", False, "OK"),  # ref §1.5: detached volumes report unknown
    ("attached", "healthy", False, "OK"),
    ("attached", "degraded", False, "WARN"),
    ("attached", "unknown", False, "FAIL"),
    ("detached", "faulted", False, "FAIL"),
    ("attached", "healthy", True, "FAIL"),
])
def test_volume_health(state, robustness, restore_required, expected):
    result = vr.verify_report([pvc("a", "pv-a")], pvs=[pv("pv-a", "v")],
                              volumes=[volume("v", state=state, robustness=robustness, restore_required=restore_required)],
                              expected_pvcs=claims({"name": "a"}), now=NOW)
    assert result["volumes"][0]["status"] == expected
    assert result["passed"] is (expected != "FAIL")


def test_a_restore_app_volume_of_a_restored_volume_counts_for_the_original():
    vol = volume("a-r2", restored=("backup-9", "a-r1"), annotations={vr.REPLACES_ANNOTATION: "pvc-a"})
    result = vr.verify_report([pvc("a", "pv")], pvs=[pv("pv", "a-r2")], volumes=[vol], expected_pvcs=claims({"name": "a", "volume": "pvc-a"}), now=NOW)
    assert result["passed"] is True and "(restore of pvc-a)" in result["pvcs"][0]["reason"]


def test_nothing_to_verify_fails():
    result = vr.verify_report([], now=NOW)
    assert result["passed"] is False and "nothing to verify" in result["summary"]


def test_all_ok_summary():
    result = vr.verify_report([pvc("a", "pv")], pvs=[pv("pv", "v")], volumes=[volume("v")], expected_pvcs=claims({"name": "a", "volume": "v"}), now=NOW)
    assert result["passed"] is True and result["summary"] == "Restore verified: 2 OK, 0 warning(s), 0 failure(s)"


# ---- restore_app_plan ----------------------------------------------------------------------------------

def deployment(name, claim, replicas=1, annotations=None):
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "apps", "annotations": annotations or {}},
            "spec": {"replicas": replicas, "template": {"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}}}


def statefulset(name, template, replicas=2):
    return {"kind": "StatefulSet", "metadata": {"name": name, "namespace": "apps"},
            "spec": {"replicas": replicas, "template": {"spec": {}}, "volumeClaimTemplates": [{"metadata": {"name": template}}]}}


def cluster(**overrides):
    state = {
        "pvcs": [pvc("app-data", "pv-old")],
        "pvs": [pv("pv-old", "pvc-old", claim="app-data")],
        "volumes": [volume("pvc-old", state="attached", robustness="healthy", replicas=2)],
        "backups": [backup("backup-1", "pvc-old", "2026-11-22T01:00:00Z"), backup("backup-2", "pvc-old", "2026-11-22T02:00:00Z"),
                    backup("backup-3", "pvc-old", "2026-11-22T02:10:00Z", state="Error"), backup("backup-x", "pvc-other", "2026-11-22T02:00:00Z")],
        "workloads": [deployment("app", "app-data"), deployment("other", "other-data"), statefulset("db", "pgdata")],
    }
    state.update(overrides)
    return state


def test_fresh_plan_takes_the_newest_completed_backup_and_a_short_new_name():
    plan = vr.restore_app_plan(["app-data"], "apps", now=NOW, **cluster())
    assert plan["errors"] == [] and plan["work"] is True
    [claim] = plan["claims"]
    assert claim == {"pvc_namespace": "apps", "pvc_name": "app-data", "pvc_exists": True, "state": "restore", "current_pv": "pv-old",
                     "current_volume": "pvc-old", "pv_reclaim_policy": "Delete", "storage_class": "longhorn", "source_volume": "pvc-old",
                     "backup": "backup-2", "backup_url": URL % ("backup-2", "pvc-old"), "backup_created_at": "2026-11-22T02:00:00Z",
                     "new_volume": "app-data-r261122021530", "new_volume_exists": False, "number_of_replicas": 2,
                     "old_pv_to_delete": "pv-old"}
    assert plan["workloads"] == [{"kind": "Deployment", "name": "app", "namespace": "apps", "current_replicas": 1, "replicas": 1, "recorded": False}]
    assert plan["plan"][0] == ("PVC apps/app-data: restore volume app-data-r261122021530 from backup backup-2 of volume pvc-old "
                               "(2026-11-22T02:00:00Z); delete PVC apps/app-data, delete PV object pv-old after setting its reclaim "
                               "policy Delete -> Retain; bind the claim to the new volume; keep the old volume pvc-old as a fallback")
    assert plan["plan"][1] == "Deployment apps/app: scale to 0, then back to 1"


@pytest.mark.parametrize("claim", ["a" * 60, "Data.Postgres_0", "0-data", "x"])
def test_new_volume_names_are_short_dns_labels(claim):
    name = vr.restore_volume_name(claim, vr._parse_time(NOW))
    assert len(name) <= 39 and name.endswith("-r261122021530") and name[0].isalpha()
    assert all(c.isdigit() or c == "-" or "a" <= c <= "z" for c in name)


@pytest.mark.parametrize("backup_name, error", [
    ("backup-1", None),
    ("backup-x", "backup backup-x is a backup of volume pvc-other, not of PVC apps/app-data's volume (pvc-old)"),
    ("backup-3", "backup backup-3 is Error, not Completed"),
    ("backup-9", "backup backup-9 (for PVC apps/app-data) is not in the cluster"),
])
def test_named_backup(backup_name, error):
    plan = vr.restore_app_plan(["app-data"], "apps", backup=backup_name, now=NOW, **cluster())
    assert plan["errors"] == ([error] if error else [])
    if not error:
        assert plan["claims"][0]["backup"] == backup_name


def test_errors_name_what_is_missing():
    plan = vr.restore_app_plan(["app-data", "nope", "free"], "apps", now=NOW,
                               **cluster(backups=[], pvcs=[pvc("app-data", "pv-old"), pvc("free", None, phase="Pending")]))
    assert plan["errors"] == [
        "PVC apps/app-data: volume pvc-old has no Completed backup in the cluster; nothing to restore from",
        "PVC apps/nope does not exist and no volume restored for it by an earlier run waits for it; restore it with the restore_cluster flow instead",
        "PVC apps/free is not bound to a PV (phase Pending)",
    ]
    assert plan["work"] is False


def test_a_claim_already_on_a_volume_restored_from_the_chosen_backup_is_done():
    restored = volume("app-data-r1", restored=("backup-2", "pvc-old"), annotations={vr.REPLACES_ANNOTATION: "pvc-old"})
    state = cluster(pvcs=[pvc("app-data", "pv-new")], pvs=[pv("pv-new", "app-data-r1", policy="Retain")],
                    volumes=[volume("pvc-old"), restored])
    plan = vr.restore_app_plan(["app-data"], "apps", now=NOW, **state)
    [claim] = plan["claims"]
    assert (claim["state"], claim["new_volume"], claim["backup"], claim["source_volume"]) == ("done", "app-data-r1", "backup-2", "pvc-old")
    assert plan["work"] is False and "nothing to restore" in plan["plan"][0]
    # A newer backup of the original volume means a new restore from it, out of the restored volume.
    state["backups"].append(backup("backup-4", "pvc-old", "2026-11-22T02:12:00Z"))
    claim = vr.restore_app_plan(["app-data"], "apps", now=NOW, **state)["claims"][0]
    assert (claim["state"], claim["backup"], claim["current_volume"]) == ("restore", "backup-4", "app-data-r1")


def test_resume_after_the_claim_was_deleted():
    pending = volume("app-data-r1", restored=("backup-2", "pvc-old"), created="2026-11-22T02:01:00Z",
                     annotations={vr.CLAIM_ANNOTATION: "apps/app-data", vr.REPLACES_ANNOTATION: "pvc-old"})
    state = cluster(pvcs=[], pvs=[pv("pv-old", "pvc-old", policy="Retain", claim="app-data")], volumes=[volume("pvc-old"), pending],
                    workloads=[deployment("app", "app-data", replicas=0, annotations={vr.REPLICAS_ANNOTATION: "3"})])
    plan = vr.restore_app_plan(["app-data"], "apps", now=NOW, **state)
    assert plan["errors"] == []
    [claim] = plan["claims"]
    assert (claim["state"], claim["pvc_exists"], claim["new_volume"], claim["backup"], claim["current_volume"], claim["old_pv_to_delete"]) == \
        ("resume", False, "app-data-r1", "backup-2", "pvc-old", "pv-old")
    assert plan["workloads"][0] == {"kind": "Deployment", "name": "app", "namespace": "apps", "current_replicas": 0, "replicas": 3, "recorded": True}


def test_workloads_found_by_claim_template_or_named():
    plan = vr.restore_app_plan(["pgdata-db-1"], "apps", now=NOW, **cluster(pvcs=[pvc("pgdata-db-1", "pv-old")]))
    assert [(w["kind"], w["name"], w["replicas"]) for w in plan["workloads"]] == [("StatefulSet", "db", 2)]
    named = [{"kind": "Deployment", "name": "other"}, {"kind": "StatefulSet", "name": "ghost"}]
    plan = vr.restore_app_plan(["app-data"], "apps", now=NOW, explicit_workloads=named, **cluster())
    assert [w["name"] for w in plan["workloads"]] == ["other"] and plan["errors"] == ["StatefulSet apps/ghost does not exist"]


def test_restore_app_mapping():
    entry = {"pvc_name": "app-data", "new_volume": "app-data-r1", "storage_class": "longhorn"}
    assert vr.restore_app_mapping(entry, "apps") == {"volume": "app-data-r1", "namespace": "apps", "pvc_name": "app-data", "storage_class": "longhorn"}
    assert "storage_class" not in vr.restore_app_mapping(dict(entry, storage_class=None), "apps")
    assert vr.restore_app_mapping(entry, "apps", for_verify=True) == {"namespace": "apps", "name": "app-data", "volume": "app-data-r1"}


def test_filters_are_registered():
    assert set(vr.FilterModule().filters()) == {"verify_report", "verify_restore_plan", "restore_app_plan", "restore_app_mapping",
                                                "restore_app_objects"}


def test_comma_separated_strings_are_lists():
    assert vr.as_list("a, b,,c") == ["a", "b", "c"] and vr.as_list(None) == [] and vr.as_list(("x",)) == ["x"]
    plan = vr.restore_app_plan("app-data", "apps", now=NOW, **cluster())
    assert [c["pvc_name"] for c in plan["claims"]] == ["app-data"]
    data = manifest(volumes=[{"volume": "v", "pvc_namespace": "apps", "pvc_name": "a"}, {"volume": "w", "pvc_namespace": "db", "pvc_name": "b"}])
    assert [c["name"] for c in vr.verify_restore_plan(data, namespaces="db")["expected_pvcs"]] == ["b"]


def test_a_label_selector_recorded_with_the_baseline_is_used():
    # The cluster_state role does not record it yet; a manifest that has it needs no pod-name heuristics.
    data = manifest(baselines=[baseline(pod_name="gone-abc", label_selector="app=db")])
    plan = vr.verify_restore_plan(data, pods=[pod("db-7", labels={"app": "db"}), pod("gone-abd")])
    assert (plan["checks"][0]["target_pod"], plan["checks"][0]["found_by"]) == ("db-7", "label selector app=db")


def test_restore_app_objects_batch_every_claim_in_one_definition_list():
    todo = [{"pvc_name": "a", "pvc_exists": True, "new_volume": "a-r1", "current_volume": "pvc-a", "old_pv_to_delete": "pv-a",
             "pv_reclaim_policy": "Delete"},
            {"pvc_name": "b", "pvc_exists": False, "new_volume": "b-r1", "current_volume": None, "old_pv_to_delete": None,
             "pv_reclaim_policy": None},
            {"pvc_name": "c", "pvc_exists": True, "new_volume": "c-r1", "current_volume": "pvc-c", "old_pv_to_delete": "pv-c",
             "pv_reclaim_policy": "Retain"}]
    marks = vr.restore_app_objects(todo, "mark", "apps", "lh")
    assert [(m["metadata"]["name"], m["metadata"]["namespace"], m["metadata"]["annotations"]) for m in marks] == [
        ("a-r1", "lh", {vr.CLAIM_ANNOTATION: "apps/a", vr.REPLACES_ANNOTATION: "pvc-a"}),
        ("b-r1", "lh", {vr.CLAIM_ANNOTATION: "apps/b", vr.REPLACES_ANNOTATION: ""}),
        ("c-r1", "lh", {vr.CLAIM_ANNOTATION: "apps/c", vr.REPLACES_ANNOTATION: "pvc-c"})]
    assert vr.restore_app_objects(todo, "retain", "apps") == [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-a"}, "spec": {"persistentVolumeReclaimPolicy": "Retain"}}]
    assert [(o["kind"], o["metadata"]) for o in vr.restore_app_objects(todo, "claims", "apps")] == [
        ("PersistentVolumeClaim", {"name": "a", "namespace": "apps"}), ("PersistentVolumeClaim", {"name": "c", "namespace": "apps"})]
    assert [o["metadata"]["name"] for o in vr.restore_app_objects(todo, "pvs", "apps")] == ["pv-a", "pv-c"]
    assert vr.restore_app_objects([], "claims", "apps") == []
    with pytest.raises(AnsibleFilterError, match="mark, retain, claims or pvs"):
        vr.restore_app_objects(todo, "volumes", "apps")
