# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission rules of the backup-side webhooks, each with a request that must be refused (ref §1, §1.1–§1.4, §1.6, §1.9).

The webhooks are served by the lab's admission server to a real API server (seeded with Longhorn installed);
no controller runs, so every status is the one a test writes.
"""

from __future__ import annotations

import base64

import pytest

from tests.lab import api_errors as errors
from tests.lab.context import LONGHORN_NAMESPACE

NS = LONGHORN_NAMESPACE
MIB = 1024 * 1024
DENIED = 'admission webhook "validator.longhorn.io" denied the request: '
MUTATOR_DENIED = 'admission webhook "mutator.longhorn.io" denied the request: '


class Cluster:
    def __init__(self, seeded_cluster, **config):
        running = seeded_cluster(**config)
        self.store = running.store
        self.ctx = running.ctx

    def rtype(self, plural):
        return self.store.registry.by_plural(plural, "longhorn.io")

    def create(self, plural, name, spec=None, labels=None, extra=None):
        body = {"metadata": {"name": name, "namespace": NS}}
        if spec is not None:
            body["spec"] = spec
        if labels:
            body["metadata"]["labels"] = labels
        body.update(extra or {})
        return self.store.create(self.rtype(plural), body)

    def modify(self, plural, name, mutate, status=False):
        return self.store.modify(self.rtype(plural), NS, name, mutate, subresource="status" if status else None)

    def get(self, plural, name):
        return self.store.get(self.rtype(plural), NS, name)

    def secret(self, name, **values):
        return self.store.create("secrets", {"metadata": {"name": name, "namespace": NS},
                                             "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}})

    def available(self, name="default", url="s3://bkt@us-east-1/"):
        def _spec(obj):
            obj["spec"]["backupTargetURL"] = url
        self.modify("backuptargets", name, _spec)
        self.modify("backuptargets", name, lambda o: o["status"].update(available=True), status=True)

    def volume_with_snapshot(self, volume="vol-1", snapshot="snap-1", **spec):
        body = {"size": str(8 * MIB), "frontend": "blockdev", "numberOfReplicas": 1}
        body.update(spec)
        self.create("volumes", volume, body)
        self.create("snapshots", snapshot, {"volume": volume, "createSnapshot": True})


def refused(call, *args, **kwargs):
    with pytest.raises(errors.ApiError) as raised:
        call(*args, **kwargs)
    return raised.value


@pytest.fixture
def cluster(seeded_cluster):
    return Cluster(seeded_cluster)


# --- BackupTarget (ref §1.1) -------------------------------------------------------------------

def test_backup_target_gets_the_finalizer_and_valid_urls_pass(cluster):
    target = cluster.create("backuptargets", "second", {"backupTargetURL": "s3://other@us-east-1/x/", "pollInterval": "0s"})
    assert target["metadata"]["finalizers"] == ["longhorn.io"]
    cluster.create("backuptargets", "hidden", {"backupTargetURL": "cifs://server/share$/dir", "pollInterval": "0s"})


def test_backup_target_name_must_match_longhorns_regex(cluster):
    error = refused(cluster.create, "backuptargets", "a", {"backupTargetURL": "s3://x@us-east-1/"})
    assert error.code == 422 and error.reason == "Invalid"
    assert error.message == DENIED + "invalid name a"


@pytest.mark.parametrize("url, found", [("s3://bkt@us-east-1/pa$th/", "$"), ("s3://bkt@us-east-1/a,b/", ","),
                                        ("nfs://srv:/exp$/", "$")])
def test_backup_target_url_path_refuses_dollar_and_comma(cluster, url, found):
    error = refused(cluster.create, "backuptargets", "bad", {"backupTargetURL": url})
    assert error.message == DENIED + "url %s, contains %s" % (url, found)


@pytest.mark.parametrize("existing, duplicate", [("s3://Bkt@us-east-1/Path/", "s3://bkt@us-east-1/path/"),
                                                 ("nfs://srv:/export/", "nfs://SRV:/export")])
def test_backup_target_url_must_be_unique(cluster, existing, duplicate):
    cluster.create("backuptargets", "first", {"backupTargetURL": existing, "pollInterval": "0s"})
    error = refused(cluster.create, "backuptargets", "second", {"backupTargetURL": duplicate})
    assert error.message == DENIED + "url %s is the same to backup target first" % duplicate
    # Different paths are different targets.
    cluster.create("backuptargets", "third", {"backupTargetURL": existing.rstrip("/") + "-other/", "pollInterval": "0s"})


def test_default_backup_target_cannot_be_deleted(cluster):
    error = refused(cluster.store.delete, cluster.rtype("backuptargets"), NS, "default")
    assert error.message == DENIED + "deleting default backup target is not allowed"
    cluster.create("backuptargets", "extra", {"backupTargetURL": "", "pollInterval": "0s"})
    cluster.store.delete(cluster.rtype("backuptargets"), NS, "extra")


def test_credential_secret_values_must_not_have_surrounding_whitespace(cluster):
    cluster.secret("clean", AWS_ACCESS_KEY_ID="key", AWS_SECRET_ACCESS_KEY="secret", AWS_ENDPOINTS="http://minio:9000")
    cluster.secret("dirty", AWS_ACCESS_KEY_ID="key\n", AWS_SECRET_ACCESS_KEY=" secret", AWS_ENDPOINTS="http://minio:9000")

    def _secret(name):
        def _apply(obj):
            obj["spec"]["credentialSecret"] = name
        return _apply
    cluster.modify("backuptargets", "default", _secret("clean"))
    error = refused(cluster.modify, "backuptargets", "default", _secret("dirty"))
    assert error.message.startswith(DENIED + "credential validation error(s): ")
    assert "invalid trailing newline in AWS_ACCESS_KEY_ID" in error.message
    assert "invalid leading whitespace in AWS_SECRET_ACCESS_KEY" in error.message
    assert "secret" not in error.message.replace("AWS_SECRET_ACCESS_KEY", "").replace("credential", "")


def test_backup_target_changes_are_refused_while_dr_volumes_exist(cluster):
    cluster.create("volumes", "dr-vol", {"size": str(8 * MIB), "frontend": "blockdev", "numberOfReplicas": 1})
    cluster.modify("volumes", "dr-vol", lambda o: o.setdefault("status", {}).update(isStandby=True), status=True)

    def _url(obj):
        obj["spec"]["backupTargetURL"] = "s3://bkt@us-east-1/"
    error = refused(cluster.modify, "backuptargets", "default", _url)
    assert error.message == DENIED + "cannot modify BackupTarget since there are existing standby volumes: map[dr-vol:{}]"


def test_status_writes_skip_the_webhooks(cluster):
    # Longhorn's webhook rules name resources, not their /status subresource.
    cluster.modify("backuptargets", "default", lambda o: o["status"].update(available=True, ownerID="x"), status=True)
    assert cluster.get("backuptargets", "default")["status"]["ownerID"] == "x"


# --- Backup (ref §1.3) -------------------------------------------------------------------------

def test_backup_mutator_fills_labels_mode_and_block_size(cluster):
    cluster.available()
    cluster.volume_with_snapshot(accessMode="rwx")
    backup = cluster.create("backups", "backup-1", {"snapshotName": "snap-1"})
    assert backup["metadata"]["labels"] == {"backup-volume": "vol-1", "backup-target": "default"}
    assert backup["spec"]["labels"] == {"longhorn.io/volume-access-mode": "rwx"}
    assert backup["spec"]["backupMode"] == "incremental"
    assert backup["spec"]["backupBlockSize"] == str(2 * MIB)
    assert backup["metadata"]["finalizers"] == ["longhorn.io"]


def test_backup_needs_an_available_target(cluster):
    cluster.volume_with_snapshot()
    error = refused(cluster.create, "backups", "backup-1", {"snapshotName": "snap-1"})
    assert error.message == DENIED + "backup target default is not available"


def test_backup_of_an_unknown_snapshot_fails_in_the_mutator(cluster):
    cluster.available()
    error = refused(cluster.create, "backups", "backup-1", {"snapshotName": "no-such-snap"})
    assert error.code == 500
    assert error.message == MUTATOR_DENIED + 'failed to get the snapshot no-such-snap: snapshot.longhorn.io "no-such-snap" not found'


def test_backup_without_snapshot_or_volume_label_is_refused(cluster):
    cluster.available()
    error = refused(cluster.create, "backups", "backup-1", {})
    assert error.message == MUTATOR_DENIED + "cannot find the backup volume label for backup backup-1"


def test_backup_block_size_cannot_change_once_valid(cluster):
    cluster.available()
    cluster.volume_with_snapshot()
    cluster.create("backups", "backup-1", {"snapshotName": "snap-1"})

    def _size(obj):
        obj["spec"]["backupBlockSize"] = str(16 * MIB)
    error = refused(cluster.modify, "backups", "backup-1", _size)
    assert "changing backup block size for backup backup-1 is not supported" in error.message


# --- BackupVolume, Snapshot, VolumeAttachment ----------------------------------------------------

def test_backup_volume_needs_target_and_volume_names(cluster):
    error = refused(cluster.create, "backupvolumes", "bv-1", {"backupTargetName": "default"})
    assert error.message == DENIED + "volume name cannot be empty"
    bv = cluster.create("backupvolumes", "bv-2", {"backupTargetName": "default", "volumeName": "v"})
    assert bv["metadata"]["finalizers"] == ["longhorn.io"]


def test_snapshot_needs_an_existing_volume_and_keeps_it(cluster):
    error = refused(cluster.create, "snapshots", "snap-x", {"volume": "ghost"})
    assert error.message == MUTATOR_DENIED + 'failed to get volume ghost: volume.longhorn.io "ghost" not found'
    cluster.volume_with_snapshot()
    cluster.create("volumes", "vol-2", {"size": str(8 * MIB), "frontend": "blockdev", "numberOfReplicas": 1})

    def _move(obj):
        obj["spec"]["volume"] = "vol-2"
    error = refused(cluster.modify, "snapshots", "snap-1", _move)
    assert error.message == DENIED + "spec.volume field is immutable"


def test_volume_attachment_ticket_ids_must_match(cluster):
    tickets = {"a": {"id": "b", "type": "csi-attacher", "nodeID": "lab-node-1", "generation": 0, "parameters": {}}}
    error = refused(cluster.create, "volumeattachments", "vol-z", {"volume": "vol-z", "attachmentTickets": tickets})
    assert error.message == DENIED + "the attachmentTickets map contains inconsistent attachment ticket ID: a vs b"


# --- RecurringJob (ref §1.9) ---------------------------------------------------------------------

def job(task="backup", cron="0 2 * * *", retain=3, **spec):
    body = {"task": task, "cron": cron, "retain": retain, "concurrency": 0}
    body.update(spec)
    return body


def test_recurring_job_defaults_and_retain_rules(cluster):
    created = cluster.create("recurringjobs", "nightly", job())
    assert created["spec"]["name"] == "nightly"
    assert created["spec"]["groups"] == [] and created["spec"]["labels"] == {} and created["spec"]["parameters"] == {}
    # ValidateRecurringJob defaults concurrency 0 to 10 only for its check; the CR keeps 0 (lm@v1.10.2).
    assert created["spec"]["concurrency"] == 0
    assert cluster.create("recurringjobs", "cleanup", job(task="snapshot-cleanup", retain=5))["spec"]["retain"] == 0
    assert cluster.create("recurringjobs", "trim", job(task="filesystem-trim", retain=5))["spec"]["retain"] == 0
    assert cluster.create("recurringjobs", "snaps", job(task="snapshot", retain=0))["spec"]["retain"] == 1
    error = refused(cluster.create, "recurringjobs", "too-many", job(retain=101))
    assert error.message == DENIED + "retain value should be less than or equal to 100"

    def _max(obj):
        obj["value"] = "10"
    cluster.modify("settings", "recurring-job-max-retention", _max)
    error = refused(cluster.create, "recurringjobs", "eleven", job(retain=11))
    assert error.message == DENIED + "retain value should be less than or equal to 10"


@pytest.mark.parametrize("cron", ["* * *", "61 * * * *", "0 25 * * *", "0 0 * * 8", "bad cron here x y", "@fortnightly"])
def test_recurring_job_cron_must_be_standard(cluster, cron):
    error = refused(cluster.create, "recurringjobs", "bad-cron", job(cron=cron))
    assert error.message.startswith(DENIED + "invalid cron format(%s): " % cron)


@pytest.mark.parametrize("cron", ["*/15 * * * *", "0 3 * * MON-FRI", "@daily", "0 0 1 JAN *", "5,35 1-5/2 * * 0"])
def test_recurring_job_standard_crons_pass(cluster, cron):
    cluster.create("recurringjobs", "good-cron", job(cron=cron))


def test_recurring_job_parameters(cluster):
    cluster.create("recurringjobs", "full-every-5", job(parameters={"full-backup-interval": "5"}))
    cluster.create("recurringjobs", "sys", job(task="system-backup", parameters={"volume-backup-policy": "always"}))
    error = refused(cluster.create, "recurringjobs", "bad-interval", job(parameters={"full-backup-interval": "often"}))
    assert "full-backup-interval:often is not number" in error.message
    error = refused(cluster.create, "recurringjobs", "bad-param", job(parameters={"colour": "blue"}))
    assert error.message == DENIED + "failed to validate recurring job backup task parameters: colour:blue is not a valid parameter"


def test_recurring_job_name_is_limited_to_40_characters(cluster):
    name = "a" * 41
    error = refused(cluster.create, "recurringjobs", name, job())
    assert error.message == DENIED + "job name %s must be 40 characters or less" % name
    cluster.create("recurringjobs", "b" * 40, job())


def test_recurring_job_group_and_label_rules(cluster):
    error = refused(cluster.create, "recurringjobs", "bad-group", job(groups=["-nope"]))
    assert error.message == DENIED + "invalid group name -nope"
    error = refused(cluster.create, "recurringjobs", "bad-label", job(labels={"k": ""}))
    assert error.message == DENIED + "value for label with key k cannot be empty"


# --- Setting (ref §1.2) --------------------------------------------------------------------------

def test_backup_target_settings_do_not_exist_from_v1_10(cluster):
    error = refused(cluster.create, "settings", "backup-target", extra={"value": "s3://bkt@us-east-1/"})
    assert error.message == MUTATOR_DENIED + "setting backup-target does not exist"


@pytest.mark.parametrize("version", ["v1.8.2", "v1.9.2"])
def test_backup_target_settings_are_not_supported_in_v1_8_and_v1_9(seeded_cluster, version):
    cluster = Cluster(seeded_cluster, longhorn_version=version)
    error = refused(cluster.create, "settings", "backup-target", extra={"value": "s3://bkt@us-east-1/"})
    assert error.message == DENIED + "value s3://bkt@us-east-1/ of settings backup-target is invalid: setting backup-target is not supported"


def test_backup_target_settings_work_up_to_v1_7(seeded_cluster):
    cluster = Cluster(seeded_cluster, longhorn_version="v1.7.2")

    def _value(obj):
        obj["value"] = "s3://bkt@us-east-1/"
    assert cluster.modify("settings", "backup-target", _value)["value"] == "s3://bkt@us-east-1/"

    def _poll(obj):
        obj["value"] = "soon"
    error = refused(cluster.modify, "settings", "backupstore-poll-interval", _poll)
    assert "backupstore-poll-interval is invalid" in error.message


def test_setting_values_are_checked_and_normalised(cluster):
    def _value(value):
        def _apply(obj):
            obj["value"] = value
        return _apply
    assert cluster.modify("settings", "default-replica-count", _value("2"))["value"] == '{"v1":"2","v2":"2"}'
    error = refused(cluster.modify, "settings", "allow-recurring-job-while-volume-detached", _value("maybe"))
    assert "of settings allow-recurring-job-while-volume-detached is invalid" in error.message
    error = refused(cluster.modify, "settings", "current-longhorn-version", _value("v9.9.9"))
    assert error.message == DENIED + "setting current-longhorn-version is read-only"
