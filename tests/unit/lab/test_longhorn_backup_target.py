# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BackupTarget and BackupVolume controllers: availability, sync of a bucket, CR-only cleanup (ref §1.1, §1.2, §1.4, §1.7)."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.lab.longhorn.backup_target_controller import backup_volume_cr_name
from tests.unit.lab.test_longhorn_backup_harness import (MIB, NS, SECRET_NAME, env, env_factory, image_of, rfc3339,  # noqa: F401 pylint: disable=unused-import
                                                        wait_for)


def condition(target, ctype="Unavailable"):
    for item in (target.get("status") or {}).get("conditions") or []:
        if item["type"] == ctype:
            return item
    return None


def test_wrong_credentials_make_the_target_unavailable_without_leaking_them(env):
    env.create_secret(access_key="AKIAWRONGWRONGWRONG1", secret_key="not-the-secret-0123456789")
    env.set_target()
    target = env.wait_target(lambda t: (condition(t) or {}).get("message", "").startswith("failed to list"), what="unavailable message")
    cond = condition(target)
    assert target["status"]["available"] is False
    assert (cond["status"], cond["reason"]) == ("True", "Unavailable")
    # ref §1.1/§7: "failed to list system backups in <url>: ..."
    assert cond["message"].startswith("failed to list system backups in %s: " % env.target_url)
    assert "InvalidAccessKeyId" in cond["message"]
    assert "not-the-secret-0123456789" not in cond["message"]
    assert "AKIAWRONGWRONGWRONG1" not in cond["message"]
    assert not target["status"].get("lastSyncedAt")


def test_missing_secret_key_is_reported_in_the_condition(env):
    env.create_secret()
    secret = env.store.get("secrets", NS, SECRET_NAME)

    def _drop(obj):
        del obj["data"]["AWS_SECRET_ACCESS_KEY"]
    env.store.modify("secrets", NS, SECRET_NAME, _drop)
    assert "AWS_SECRET_ACCESS_KEY" in secret["data"]
    env.set_target()
    target = env.wait_target(lambda t: "missing" in (condition(t) or {}).get("message", ""), what="missing key message")
    assert condition(target)["message"].endswith("could not backup to s3, missing [AWS_SECRET_ACCESS_KEY] in the secret")


def test_right_credentials_make_it_available_then_sync(env):
    events = []
    watch = env.store.watch(env.rtype("backuptargets"), NS, resource_version=env.store.list(env.rtype("backuptargets"), NS)[1])
    env.create_secret()
    started = rfc3339()
    env.set_target()
    target = env.wait_synced(after=started)
    cond = condition(target)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "", "")
    while True:
        item = watch.next(timeout=0.2)
        if item is None:
            break
        events.append(item[1].get("status") or {})
    watch.close()
    # ref §1.1 (#11337): available flips first without lastSyncedAt; the sync comes on the next pass.
    flips = [i for i, s in enumerate(events) if s.get("available")]
    assert flips, events
    assert not events[flips[0]].get("lastSyncedAt")
    assert any(s.get("lastSyncedAt") for s in events[flips[0] + 1:])


def test_missing_secret_leaves_the_status_alone(env):
    env.set_target(secret="no-such-secret")
    time.sleep(0.5)
    target = env.get("backuptargets", "default")
    # newBackupTargetClient fails before any store access: Longhorn keeps the old condition (ref §1.1).
    assert condition(target)["message"] == "backup target URL is empty"
    assert target["status"]["available"] is False


def test_sync_pulls_backup_volumes_and_backups_from_the_bucket(env, tmp_path):
    image = image_of({"data/a.bin": b"a" * 3 * MIB, "b.txt": b"hello"}, tmp=str(tmp_path))
    labels = {"longhorn.io/volume-access-mode": "rwx", "KubernetesStatus": '{"namespace":"apps","pvcName":"data"}'}
    first = env.write_remote_backup("pvc-remote-1", "backup-aaaaaaaaaaaaaaaa", image, 8 * MIB, labels=labels,
                                    snapshot_created_at="2026-01-01T00:00:00Z")
    env.write_remote_backup("pvc-remote-1", "backup-bbbbbbbbbbbbbbbb", image, 8 * MIB, labels=labels, snapshot_created_at="2026-01-02T00:00:00Z")
    env.write_remote_backup("pvc-remote-2", "backup-cccccccccccccccc", image, 8 * MIB)
    env.configure_target()
    bv_name = "pvc-remote-1-" + hashlib.sha256(b"pvc-remote-1-default").hexdigest()[:8]
    assert backup_volume_cr_name("pvc-remote-1", "default") == bv_name

    def _bv_synced():
        bv = env.get("backupvolumes", bv_name)
        return bv if bv and (bv.get("status") or {}).get("lastBackupName") else None
    bv = wait_for(_bv_synced, what="backup volume status")
    assert bv["metadata"]["labels"] == {"backup-target": "default", "backup-volume": "pvc-remote-1"}
    assert bv["spec"]["volumeName"] == "pvc-remote-1"
    assert bv["spec"]["backupTargetName"] == "default"
    status = bv["status"]
    assert status["lastBackupName"] == "backup-bbbbbbbbbbbbbbbb"
    assert status["lastBackupAt"] == "2026-01-02T00:00:00Z"
    assert status["size"] == str(8 * MIB)
    assert status["labels"]["KubernetesStatus"] == labels["KubernetesStatus"]
    volume_cfg = env.backupstore().read_volume_cfg("pvc-remote-1")
    assert status["dataStored"] == str(volume_cfg["BlockCount"] * 2 * MIB)
    assert status["createdAt"] == volume_cfg["CreatedTime"]

    backup = env.wait_backup("backup-aaaaaaaaaaaaaaaa", ("Completed",))
    assert backup["metadata"]["labels"]["backup-volume"] == "pvc-remote-1"
    assert backup["metadata"]["labels"]["backup-target"] == "default"
    assert backup["spec"]["labels"] == {"longhorn.io/volume-access-mode": "rwx"}
    assert backup["spec"]["backupBlockSize"] == str(2 * MIB)
    st = backup["status"]
    assert st["url"] == "%s?backup=backup-aaaaaaaaaaaaaaaa&volume=pvc-remote-1" % env.normalized_url
    assert st["snapshotName"] == "snap-backup-aaaaaaaaaaaaaaaa"
    assert st["snapshotCreatedAt"] == "2026-01-01T00:00:00Z"
    assert st["size"] == str(first["Size"])
    assert st["volumeSize"] == str(8 * MIB)
    assert st["compressionMethod"] == "lz4"
    assert st["backupTargetName"] == "default"
    assert st["labels"]["KubernetesStatus"] == labels["KubernetesStatus"]
    env.wait_backup("backup-cccccccccccccccc", ("Completed",))
    assert len(env.list("backupvolumes", "backup-target=default")) == 2


def test_in_progress_backup_in_the_bucket_is_not_completed(env, tmp_path):
    image = image_of({"x": b"x" * MIB}, tmp=str(tmp_path))
    env.write_remote_backup("pvc-busy", "backup-done000000000000", image, 8 * MIB)
    writer = env.backupstore().begin_backup("pvc-busy", "backup-running0000000000", compression="lz4", volume_size=8 * MIB)
    writer.abort()      # the stub cfg with an empty CreatedTime stays, like a crashed or running backup
    env.configure_target()
    env.wait_backup("backup-done000000000000", ("Completed",))
    running = wait_for(lambda: env.get("backups", "backup-running0000000000"), what="CR of the in-progress backup")
    time.sleep(0.5)
    running = env.get("backups", "backup-running0000000000")
    assert (running.get("status") or {}).get("state") != "Completed"
    assert running["spec"]["backupBlockSize"] == "-1"


def test_vanished_remote_data_removes_crs_only(env, tmp_path):
    image = image_of({"x": b"x" * MIB}, tmp=str(tmp_path))
    env.write_remote_backup("pvc-gone", "backup-gone000000000000", image, 8 * MIB)
    env.write_remote_backup("pvc-stays", "backup-keep000000000000", image, 8 * MIB)
    env.write_remote_backup("pvc-stays", "backup-drop000000000000", image, 8 * MIB)
    env.configure_target()
    env.wait_backup("backup-gone000000000000", ("Completed",))
    env.wait_backup("backup-drop000000000000", ("Completed",))
    store = env.backupstore()
    store.delete_volume("pvc-gone")
    store.delete(store.backup_cfg_key("pvc-stays", "backup-drop000000000000"))
    started = rfc3339()
    env.request_sync()
    env.wait_synced(after=started)
    wait_for(lambda: env.get("backupvolumes", backup_volume_cr_name("pvc-gone", "default")) is None, what="BackupVolume removed")
    wait_for(lambda: env.get("backups", "backup-drop000000000000") is None, what="Backup CR removed")
    # CR-only deletions: what is still in the bucket is untouched.
    assert store.read_backup_cfg("pvc-stays", "backup-keep000000000000") is not None
    assert env.get("backups", "backup-keep000000000000") is not None


def test_empty_url_clears_availability_and_drops_crs_only(env, tmp_path):
    image = image_of({"x": b"x" * MIB}, tmp=str(tmp_path))
    env.write_remote_backup("pvc-keep", "backup-keep111111111111", image, 8 * MIB)
    env.configure_target()
    env.wait_backup("backup-keep111111111111", ("Completed",))
    env.set_target(url="", secret="")
    target = env.wait_target(lambda t: condition(t)["message"] == "backup target URL is empty", what="empty URL condition")
    assert target["status"]["available"] is False
    wait_for(lambda: not env.list("backupvolumes"), what="BackupVolumes gone")
    wait_for(lambda: not env.list("backups"), what="Backups gone")
    assert env.backupstore().read_backup_cfg("pvc-keep", "backup-keep111111111111") is not None


def test_poll_interval_requests_syncs(env):
    env.configure_target()
    first = env.get("backuptargets", "default")["spec"].get("syncRequestedAt")
    env.set_target(poll="1s")
    requested = env.get("backuptargets", "default")["spec"]["syncRequestedAt"]
    later = env.wait_target(lambda t: t["spec"]["syncRequestedAt"] > requested, timeout=5, what="timer sync request")
    assert later["spec"]["syncRequestedAt"] > (first or "")


def test_zero_poll_interval_does_not_poll(env):
    env.configure_target()
    env.set_target(poll="0s")
    requested = env.get("backuptargets", "default")["spec"]["syncRequestedAt"]
    time.sleep(2.2)
    assert env.get("backuptargets", "default")["spec"]["syncRequestedAt"] == requested


def test_system_backups_sync_for_the_default_target_only(env):
    store = env.backupstore()
    store.write_system_backup("v1.10.2", "sb-remote", b"PK\x05\x06" + bytes(18), manager_image="longhornio/longhorn-manager:v1.10.2",
                              engine_image="longhornio/longhorn-engine:v1.10.2", git_commit="abc", target_url=env.target_url,
                              created_at=rfc3339())
    env.configure_target()
    sb = wait_for(lambda: env.get("systembackups", "sb-remote"), what="SystemBackup pulled")
    assert sb["metadata"]["labels"]["longhorn.io/version"] == "v1.10.2"
    assert sb["metadata"]["ownerReferences"][0]["kind"] == "BackupTarget"


def test_second_target_gets_its_own_backup_volumes(env, tmp_path):
    image = image_of({"x": b"x" * MIB}, tmp=str(tmp_path))
    env.write_remote_backup("pvc-shared", "backup-shared0000000000", image, 8 * MIB)
    env.configure_target()
    other_prefix = env.prefix + "-other"
    writer = env.backupstore(other_prefix).begin_backup("pvc-other", "backup-other00000000000", compression="lz4", volume_size=8 * MIB)
    writer.write_image(image)
    writer.finish(snapshot_name="s", snapshot_created_at=rfc3339(), created_at=rfc3339(), volume_size=8 * MIB, labels={})
    env.create("backuptargets", "second", {"backupTargetURL": env.s3.backup_target_url(other_prefix), "credentialSecret": SECRET_NAME,
                                           "pollInterval": "0s"})
    bv_name = backup_volume_cr_name("pvc-other", "second")
    bv = wait_for(lambda: env.get("backupvolumes", bv_name), what="BackupVolume of the second target")
    assert bv["metadata"]["labels"] == {"backup-target": "second", "backup-volume": "pvc-other"}
    assert env.get("backupvolumes", backup_volume_cr_name("pvc-other", "default")) is None
    assert env.get("systembackups", "anything") is None


@pytest.mark.parametrize("version", ["v1.7.2"])
def test_legacy_settings_drive_the_default_target(env_factory, tmp_path, version):
    env = env_factory(longhorn_version=version)
    env.create_secret()
    image = image_of({"x": b"x" * MIB}, tmp=str(tmp_path))
    env.write_remote_backup("pvc-legacy", "backup-legacy000000000", image, 8 * MIB)
    settings = env.rtype("settings")

    def _value(value):
        def _apply(obj):
            obj["value"] = value
        return _apply
    env.store.modify(settings, NS, "backupstore-poll-interval", _value("120"))
    env.store.modify(settings, NS, "backup-target-credential-secret", _value(SECRET_NAME))
    env.store.modify(settings, NS, "backup-target", _value(env.target_url))
    target = env.wait_target(lambda t: t["spec"]["backupTargetURL"] == env.target_url and t["status"].get("lastSyncedAt"),
                             what="default target from the settings")
    assert target["spec"]["credentialSecret"] == SECRET_NAME
    assert target["spec"]["pollInterval"] == "2m0s"
    # Up to v1.7 the BackupVolume CR is named after the volume (ref §1.4).
    bv = wait_for(lambda: env.get("backupvolumes", "pvc-legacy"), what="legacy BackupVolume")
    assert bv["metadata"]["labels"]["backup-volume"] == "pvc-legacy"
    env.wait_backup("backup-legacy000000000", ("Completed",))

    # An edit of the CR is overwritten by the settings (ref §1.2).
    def _edit(obj):
        obj["spec"]["pollInterval"] = "0s"
    env.modify("backuptargets", "default", _edit)
    env.wait_target(lambda t: t["spec"]["pollInterval"] == "2m0s", what="CR reverted to the settings")


def test_default_resource_configmap_overwrites_the_default_target(env):
    env.create_secret()

    def _data(text):
        def _apply(obj):
            obj["data"] = {"default-resource.yaml": text}
        return _apply
    env.store.modify("configmaps", NS, "longhorn-default-resource",
                     _data("backup-target: %s\nbackup-target-credential-secret: %s\nbackupstore-poll-interval: 600\n"
                           % (env.target_url, SECRET_NAME)))
    target = env.wait_target(lambda t: t["spec"]["backupTargetURL"] == env.target_url and (t["status"] or {}).get("lastSyncedAt"),
                             what="target from the ConfigMap")
    assert target["spec"]["credentialSecret"] == SECRET_NAME
    assert target["spec"]["pollInterval"] == "10m0s"

    # A kubectl/Ansible edit of the CR stays until the ConfigMap is applied again (ref §1.2, #10043).
    def _edit(obj):
        obj["spec"]["pollInterval"] = "1m0s"
    env.modify("backuptargets", "default", _edit)
    time.sleep(0.3)
    assert env.get("backuptargets", "default")["spec"]["pollInterval"] == "1m0s"

    def _touch(obj):
        obj["metadata"].setdefault("labels", {})["touched"] = "yes"
    env.store.modify("configmaps", NS, "longhorn-default-resource", _touch)
    env.wait_target(lambda t: t["spec"]["pollInterval"] == "10m0s", what="CR overwritten by the ConfigMap")

    # Keys absent from the ConfigMap keep the CR's values.
    env.store.modify("configmaps", NS, "longhorn-default-resource", _data("backupstore-poll-interval: 120\n"))
    target = env.wait_target(lambda t: t["spec"]["pollInterval"] == "2m0s", what="poll interval only")
    assert target["spec"]["backupTargetURL"] == env.target_url
