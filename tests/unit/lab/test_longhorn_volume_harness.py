# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Harness for the volume-side tests of the Longhorn emulator, and its own smoke tests.

A ``LonghornEnv`` is a real control plane seeded with Longhorn installed, all Longhorn admission
hooks served to its API server, a ControllerManager running every Longhorn controller of the
emulator (volume side and backup side) and the lab S3 server (one per session, each env under
its own bucket prefix).
"""

from __future__ import annotations

import base64
import datetime
import os
import time
import uuid

import pytest

from tests.lab.context import LONGHORN_NAMESPACE
from tests.lab.controllers import csi
from tests.lab.longhorn import (
    backup_controller,
    backup_target_controller,
    backup_volume_controller,
    common,
    settings_controller,
    snapshot_controller,
    volumedata,
)
from tests.lab.longhorn.backupstore import BackupStore
from tests.lab.longhorn.system_backup_controller import SystemBackupController
from tests.lab.longhorn.system_restore_controller import SystemRestoreController
from tests.lab.longhorn.targets import parse_backup_target_url
from tests.lab.longhorn.volume_controller import VolumeController

NS = LONGHORN_NAMESPACE
MIB = 1024 * 1024
SECRET_NAME = "minio-secret"


def rfc3339(value=None):
    return (value or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def lh(store, plural):
    return store.registry.by_plural(plural, "longhorn.io")


def wait_for(predicate, timeout=15.0, interval=0.02, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last value: %r)" % (timeout, what, last))


class LonghornEnv:
    """One in-process Longhorn emulator for a test."""

    def __init__(self, seeded_cluster, **config):
        config.setdefault("step_delay", 0.01)
        self.cluster = seeded_cluster(**config)     # on the session's S3 server, under a prefix of its own
        self.config = self.cluster.config
        self.s3 = self.cluster.s3
        self.prefix = "t-%s" % uuid.uuid4().hex[:10]
        self.target_url = self.s3.backup_target_url(self.prefix)
        self.faults = self.cluster.faults
        self.store = self.cluster.store
        self.ctx = self.cluster.ctx
        self.ctx.extras["env"] = self
        self.manager = self.cluster.manager
        self.volumes = self.manager.add(VolumeController(self.ctx))
        self.system_backups = self.manager.add(SystemBackupController(self.ctx))
        self.system_restores = self.manager.add(SystemRestoreController(self.ctx))
        for module in (settings_controller, backup_target_controller, backup_volume_controller, snapshot_controller, backup_controller):
            for controller_class in module.CONTROLLERS:
                self.manager.add(controller_class(self.ctx))
        # Longhorn's CSI plugin, as in the lab: pods on the real node get their volumes attached.
        for controller_class in csi.CONTROLLERS:
            self.manager.add(controller_class(self.ctx))
        self.cluster.start_controllers()

    def stop(self):
        self.manager.stop()

    # ---- objects ---------------------------------------------------------------
    def backupstore(self):
        return BackupStore(self.s3.client(), self.s3.bucket, parse_backup_target_url(self.target_url).path)

    def get(self, plural, name, namespace=NS):
        rtype = lh(self.store, plural) if namespace == NS and lh(self.store, plural) is not None else plural
        return self.store.try_get(rtype, namespace, name)

    def volume(self, name):
        return self.get("volumes", name)

    def create_volume(self, name, size=8 * MIB, **spec):
        body = {"size": str(size), "frontend": "blockdev", "numberOfReplicas": 1}
        body.update(spec)
        return self.store.create(lh(self.store, "volumes"), {"metadata": {"name": name, "namespace": NS}, "spec": body})

    def wait_volume(self, name, predicate, timeout=15.0, what=None):
        def _check():
            volume = self.volume(name)
            return volume if volume is not None and volume.get("status") and predicate(volume) else None
        return wait_for(_check, timeout, what=what or "volume %s" % name)

    def wait_state(self, name, state, timeout=15.0):
        return self.wait_volume(name, lambda v: (v.get("status") or {}).get("state") == state, timeout, "volume %s %s" % (name, state))

    def write_files(self, volume_name, files):
        root = self.ctx.volume_data_dir(volume_name)
        for rel, content in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
        return root

    def configure_target(self):
        """The credential Secret and BackupTarget default, made available as the target controller would (ref §1.1)."""
        self.store.create("secrets", {"metadata": {"name": SECRET_NAME, "namespace": NS}, "type": "Opaque", "data": {
            key: base64.b64encode(value.encode()).decode() for key, value in (
                ("AWS_ACCESS_KEY_ID", self.s3.access_key), ("AWS_SECRET_ACCESS_KEY", self.s3.secret_key),
                ("AWS_ENDPOINTS", self.s3.endpoint))}})
        rtype = lh(self.store, "backuptargets")

        def _spec(obj):
            obj["spec"]["backupTargetURL"] = self.target_url
            obj["spec"]["credentialSecret"] = SECRET_NAME
        self.store.modify(rtype, NS, "default", _spec)
        # The target controller finds the store reachable, then syncs it (ref §1.1).
        wait_for(lambda: (self.get("backuptargets", "default").get("status") or {}).get("available"), what="backup target available")
        wait_for(lambda: (self.get("backuptargets", "default").get("status") or {}).get("lastSyncedAt"), what="first target sync")

    def write_backup(self, volume_name, backup_name, image, size, labels=None, snapshot_created_at=None):
        """A backup in the bucket made with BackupWriter, as another cluster would have left it."""
        writer = self.backupstore().begin_backup(volume_name, backup_name, compression="lz4", volume_size=size)
        writer.write_image(image)
        return writer.finish(snapshot_name="snap-" + backup_name, snapshot_created_at=snapshot_created_at or rfc3339(),
                             created_at=rfc3339(), volume_size=size, labels=labels or {})

    def sync(self):
        """Ask for a target sync, as a user would by bumping syncRequestedAt (ref §1.1)."""
        common.request_sync(self.store, "backuptargets", "default")

    def sync_backup_crs(self, volume_name, backup_name):
        """Sync the target until the remote backup is a Completed Backup CR (ref §1.4)."""
        def _synced():
            backup = self.get("backups", backup_name)
            if ((backup or {}).get("status") or {}).get("state") == "Completed":
                return backup
            self.sync()
            return None
        return wait_for(_synced, interval=0.2, what="Backup CR %s of %s synced" % (backup_name, volume_name))

    def sync_system_backups(self):
        """Sync the target: system backups in the store become SystemBackup CRs labelled with their version (ref §1.7)."""
        names = {item["name"] for item in self.backupstore().list_system_backups()}

        def _synced():
            if all(self.get("systembackups", name) is not None for name in names):
                return True
            self.sync()
            return False
        wait_for(_synced, interval=0.2, what="SystemBackup CRs of %s" % sorted(names))

    def wipe(self):
        """The cluster is rebuilt: every object and all node-local data are gone, the bucket stays."""
        self.cluster.wipe_cluster()


@pytest.fixture
def env(seeded_cluster):
    running = LonghornEnv(seeded_cluster)
    yield running
    running.stop()


def test_env_installs_longhorn_with_volume_side_controllers(env):
    assert env.store.try_get("namespaces", "", NS) is not None
    names = [c.name for c in env.manager.controllers()]
    assert names[:3] == ["longhorn-volume", "longhorn-system-backup", "longhorn-system-restore"]


def test_env_backup_written_with_backupwriter_reads_back(env):
    image = volumedata.image_from_dir(env.write_files("src-vol", {"a.txt": b"hello"}), 4 * MIB)
    env.write_backup("src-vol", "backup-0123456789abcdef", image, 4 * MIB)
    restored, size = env.backupstore().read_image("src-vol", "backup-0123456789abcdef")
    assert size == 4 * MIB
    assert len(restored) == 4 * MIB
    assert volumedata.image_digest(restored) == volumedata.image_digest(image)
