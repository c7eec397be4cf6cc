# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the restore_plan filter: what to restore, what is missing, what conflicts, which method."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.longhorn_dr.plugins.filter.restore_plan import FilterModule, restore_plan

FORMAT = "homelab.longhorn_dr/cluster-state/v1"


def _bucket_volume(name, namespace=None, claim=None, backup="backup-1", at="2026-01-01T02:00:00Z"):
    return {"name": name, "size": 1024, "pvc_namespace": namespace, "pvc_name": claim, "last_backup_name": backup,
            "last_backup_at": at if backup else None, "last_backup_age": 60 if backup else None}


def _bucket(volumes, system_backups=()):
    return {"access": {"readable": True}, "volumes": volumes, "system_backups": list(system_backups)}


def _pvc(namespace, name, volume_name=None):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"volumeName": volume_name}}


BUCKET = _bucket([_bucket_volume("vol-a", "apps", "a"), _bucket_volume("vol-b", "db", "b"), _bucket_volume("vol-x")])


def test_every_pvc_of_the_bucket_is_planned():
    plan = restore_plan(BUCKET)
    assert [(e["pvc_namespace"], e["pvc_name"], e["volume"], e["pv_name"], e["action"]) for e in plan["entries"]] == [
        ("apps", "a", "vol-a", "vol-a", "restore"), ("db", "b", "vol-b", "vol-b", "restore")]
    assert plan["entries"][0]["backup"] == {"name": "backup-1", "created_at": "2026-01-01T02:00:00Z", "age_seconds": 60, "size": 1024}
    assert plan["unmapped"] == ["vol-x"] and plan["volumes"] == ["vol-a", "vol-b"] and plan["ok"] is True
    assert plan["method"] == "volumes"


def test_selection_by_namespace_and_claim():
    assert [e["volume"] for e in restore_plan(BUCKET, namespaces=["db"])["entries"]] == ["vol-b"]
    assert [e["volume"] for e in restore_plan(BUCKET, claims=["apps/a"])["entries"]] == ["vol-a"]
    plan = restore_plan(BUCKET, claims=["apps/a", "apps/ghost"])
    assert plan["ok"] is False and plan["missing"] == ["apps/ghost (no backup in the bucket names this PVC)"]


def test_manifest_maps_unlabelled_volumes_and_expects_its_pvcs():
    manifest = {"format": FORMAT, "volumes": [
        {"volume": "vol-x", "pvc_namespace": "apps", "pvc_name": "x", "pv_name": "pv-x"},
        {"volume": "vol-gone", "pvc_namespace": "apps", "pvc_name": "gone"},
    ]}
    bucket = _bucket(BUCKET["volumes"] + [_bucket_volume("vol-nobackup", "apps", "nb", backup=None)])
    manifest["volumes"].append({"volume": "vol-nobackup", "pvc_namespace": "apps", "pvc_name": "nb"})
    plan = restore_plan(bucket, manifest=manifest)
    x = next(e for e in plan["entries"] if e["volume"] == "vol-x")
    assert (x["pvc_name"], x["pv_name"], x["source"]) == ("x", "pv-x", "manifest")
    assert plan["missing"] == ["apps/gone (no volume vol-gone in the bucket)", "apps/nb (volume vol-nobackup has no complete backup)"]
    assert plan["ok"] is False and any(p.startswith("missing backup: apps/gone") for p in plan["problems"])


def test_existing_claims_and_volumes():
    restored = {"metadata": {"name": "vol-b", "annotations": {"longhorn-dr.homelab/restored-from": "s3://b@r/?backup=backup-1&volume=vol-b"}}}
    plan = restore_plan(BUCKET, pvcs=[_pvc("apps", "a", "vol-a")], volumes=[restored])
    assert [e["action"] for e in plan["entries"]] == ["done", "restore"] and plan["ok"] is True
    other = {"metadata": {"name": "vol-b"}, "spec": {}}
    older = {"metadata": {"name": "vol-b"}, "spec": {"fromBackup": "s3://b@r/?backup=backup-0&volume=vol-b"}}
    plan = restore_plan(BUCKET, pvcs=[_pvc("apps", "a", "pvc-fresh"), _pvc("db", "b")], volumes=[other])
    assert plan["conflicts"] == ["apps/a: PVC apps/a exists and is bound to PV pvc-fresh",
                                 "db/b: PVC db/b exists and is waiting for a new volume"]
    plan = restore_plan(BUCKET, volumes=[other])
    assert plan["conflicts"] == ["db/b: Longhorn volume vol-b exists and was not restored from its backups"]
    plan = restore_plan(BUCKET, volumes=[older])
    assert plan["conflicts"] == ["db/b: Longhorn volume vol-b exists, restored from backup backup-0, not from the newest backup-1"]


@pytest.mark.parametrize("system_backups, selection, method, expected", [
    ([], {}, "auto", ("volumes", None)),
    ([{"name": "old", "created": "2026-01-01T01:00:00Z", "checksum": "not_checked"}], {}, "auto", ("volumes", None)),
    ([{"name": "new", "created": "2026-01-01T03:00:00Z", "checksum": "not_checked"}], {}, "auto", ("system_backup", "new")),
    ([{"name": "new", "created": "2026-01-01T03:00:00Z", "checksum": "missing_zip"}], {}, "auto", ("volumes", None)),
    ([{"name": "new", "created": "2026-01-01T03:00:00Z", "checksum": "ok"}], {"namespaces": ["db"]}, "auto", ("volumes", None)),
    ([{"name": "old", "created": "2026-01-01T01:00:00Z", "checksum": "ok"}], {}, "system_backup", ("system_backup", "old")),
])
def test_method(system_backups, selection, method, expected):
    plan = restore_plan(_bucket(BUCKET["volumes"], system_backups), method=method, **selection)
    assert (plan["method"], plan["system_backup"]) == expected and plan["ok"] is True, plan["method_reason"]


def test_system_backup_that_is_not_there_is_a_problem():
    plan = restore_plan(BUCKET, method="system_backup", system_backup="nope")
    assert plan["ok"] is False and plan["problems"] == ["system backup nope is not in the bucket (found: none)"]


def test_empty_bucket_is_not_ok():
    plan = restore_plan(_bucket([]))
    assert plan["ok"] is False and plan["problems"] == ["nothing to restore: no backup in the bucket names a PVC"]


@pytest.mark.parametrize("bucket, kwargs, message", [
    ({"failed": True, "msg": "InvalidAccessKeyId"}, {}, "needs a readable bucket inventory: InvalidAccessKeyId"),
    (BUCKET, {"claims": ["no-slash"]}, "claims must be namespace/name, got 'no-slash'"),
    (BUCKET, {"manifest": {"format": "x"}}, "manifest is not a cluster-state manifest"),
    (BUCKET, {"method": "magic"}, "method must be auto, volumes or system_backup"),
])
def test_bad_input_is_a_clear_error(bucket, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        restore_plan(bucket, **kwargs)


def test_filter_is_registered():
    assert FilterModule().filters()["restore_plan"] is restore_plan


def test_an_unknown_namespace_in_the_selection_is_called_unknown():
    """Issue 10 finding 6: a typo in restore_cluster_namespaces used to restore the other namespaces silently."""
    plan = restore_plan(BUCKET, namespaces=["db", "dbb"])
    assert plan["ok"] is False
    assert plan["problems"] == ["namespaces: unknown namespace 'dbb': no backup in the bucket and no PVC of the cluster-state "
                                "export is in it (known: apps, db)"]
    assert [e["volume"] for e in plan["entries"]] == ["vol-b"]
    manifest = {"format": FORMAT, "volumes": [{"volume": "vol-y", "pvc_namespace": "wiki", "pvc_name": "y"}]}
    assert "namespaces: unknown namespace" not in " ".join(restore_plan(BUCKET, manifest=manifest, namespaces=["wiki"])["problems"])
