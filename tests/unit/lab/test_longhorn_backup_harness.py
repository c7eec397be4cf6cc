# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Harness for the backup-side tests of the Longhorn emulator, and its smoke tests.

A ``BackupEnv`` is a real control plane seeded with Longhorn installed, every admission hook
served to its API server, a ControllerManager running the backup-side controllers and the lab S3 server (one per test module; each env
uses its own bucket prefix). Attachment tickets are satisfied by a tiny stand-in for the
volume controller, so these tests do not depend on the volume side.
"""

from __future__ import annotations

import base64
import datetime
import os
import time
import uuid

import pytest

from tests.lab.context import LONGHORN_NAMESPACE
from tests.lab.controllers.runtime import Controller
from tests.lab.longhorn import backup_controller, backup_target_controller, backup_volume_controller, settings_controller, snapshot_controller, volumedata
from tests.lab.longhorn.backupstore import BackupStore
from tests.lab.longhorn.targets import parse_backup_target_url

NS = LONGHORN_NAMESPACE
MIB = 1024 * 1024
SECRET_NAME = "minio-secret"


def rfc3339(value=None):
    return (value or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for(predicate, timeout=15.0, interval=0.02, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last value: %r)" % (timeout, what, last))


class StandInAttacher(Controller):
    """Stand-in for the volume controller: a volume is attached while it has tickets, and they are satisfied."""

    name = "stand-in-attacher"
    watches = (("longhorn.io", "volumeattachments"),)

    def reconcile(self, key):
        store = self.store
        va_type = store.registry.by_plural("volumeattachments", "longhorn.io")
        va = store.try_get(va_type, NS, key[3])
        if va is None:
            return None
        tickets = (va.get("spec") or {}).get("attachmentTickets") or {}
        self.ctx.extras.setdefault("attach_log", []).append((key[3], sorted(tickets)))

        def _statuses(obj):
            obj["status"] = {"attachmentTicketStatuses": {
                tid: {"id": tid, "generation": 0, "satisfied": True,
                      "conditions": [{"type": "Satisfied", "status": "True", "reason": "", "message": ""}]}
                for tid in tickets}}
        store.modify(va_type, NS, key[3], _statuses, subresource="status")
        vol_type = store.registry.by_plural("volumes", "longhorn.io")
        if store.try_get(vol_type, NS, key[3]) is not None:
            state = "attached" if tickets else "detached"

            def _state(obj):
                obj.setdefault("status", {})["state"] = state
            store.modify(vol_type, NS, key[3], _state, subresource="status")
        return None


class BackupEnv:
    """One in-process Longhorn emulator (backup side) for a test."""

    def __init__(self, seeded_cluster, attacher=True, **config):
        config.setdefault("step_delay", 0.01)
        self.cluster = seeded_cluster(**config)     # on the session's S3 server, under a prefix of its own
        self.config = self.cluster.config
        self.s3 = self.cluster.s3
        self.prefix = "t-%s" % uuid.uuid4().hex[:10]
        self.target_url = self.s3.backup_target_url(self.prefix)
        self.normalized_url = parse_backup_target_url(self.target_url).normalized
        self.faults = self.cluster.faults
        self.store = self.cluster.store
        self.ctx = self.cluster.ctx
        self.manager = self.cluster.manager
        for module in (settings_controller, backup_target_controller, backup_volume_controller, snapshot_controller, backup_controller):
            for controller_class in module.CONTROLLERS:
                self.manager.add(controller_class(self.ctx))
        if attacher:
            self.manager.add(StandInAttacher(self.ctx))
        self.cluster.start_controllers()

    def stop(self):
        self.manager.stop()

    # ---- objects ---------------------------------------------------------------
    def rtype(self, plural):
        return self.store.registry.by_plural(plural, "longhorn.io")

    def get(self, plural, name):
        return self.store.try_get(self.rtype(plural), NS, name)

    def list(self, plural, selector=None):
        return self.store.list(self.rtype(plural), NS, label_selector=selector)[0]

    def create(self, plural, name, spec, labels=None):
        meta = {"name": name, "namespace": NS}
        if labels:
            meta["labels"] = labels
        return self.store.create(self.rtype(plural), {"metadata": meta, "spec": spec})

    def modify(self, plural, name, mutate, status=False):
        return self.store.modify(self.rtype(plural), NS, name, mutate, subresource="status" if status else None)

    def backupstore(self, prefix=None):
        return BackupStore(self.s3.client(), self.s3.bucket, self.prefix if prefix is None else prefix)

    def create_secret(self, name=SECRET_NAME, access_key=None, secret_key=None, endpoint=None, extra=None):
        values = {"AWS_ACCESS_KEY_ID": self.s3.access_key if access_key is None else access_key,
                  "AWS_SECRET_ACCESS_KEY": self.s3.secret_key if secret_key is None else secret_key,
                  "AWS_ENDPOINTS": self.s3.endpoint if endpoint is None else endpoint}
        values.update(extra or {})
        return self.store.create("secrets", {"metadata": {"name": name, "namespace": NS}, "type": "Opaque",
                                             "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}})

    def set_target(self, url=None, secret=SECRET_NAME, name="default", poll=None):
        """Point a BackupTarget at the bucket and request a sync, as the collection's module does (ref §8)."""
        url = self.target_url if url is None else url

        def _spec(obj):
            obj["spec"]["backupTargetURL"] = url
            obj["spec"]["credentialSecret"] = secret
            obj["spec"]["syncRequestedAt"] = rfc3339()
            if poll is not None:
                obj["spec"]["pollInterval"] = poll
        return self.modify("backuptargets", name, _spec)

    def request_sync(self, name="default"):
        """Write syncRequestedAt = now, as a client would; wait for the next second if now is already written."""
        current = (self.get("backuptargets", name)["spec"] or {}).get("syncRequestedAt") or ""
        while rfc3339() <= current:
            time.sleep(0.05)

        def _spec(obj):
            obj["spec"]["syncRequestedAt"] = rfc3339()
        return self.modify("backuptargets", name, _spec)

    def wait_target(self, predicate, name="default", timeout=15.0, what="backup target"):
        def _check():
            target = self.get("backuptargets", name)
            return target if target is not None and predicate(target) else None
        return wait_for(_check, timeout, what=what)

    def wait_synced(self, name="default", after=None, timeout=15.0):
        """BackupTarget available with a lastSyncedAt at or after ``after``."""
        def _synced(target):
            status = target.get("status") or {}
            return status.get("available") and status.get("lastSyncedAt") and (after is None or status["lastSyncedAt"] >= after)
        return self.wait_target(_synced, name, timeout, "target %s synced" % name)

    def configure_target(self):
        self.create_secret()
        started = rfc3339()
        self.set_target()
        return self.wait_synced(after=started)

    def create_volume(self, name, size=8 * MIB, **spec):
        body = {"size": str(size), "frontend": "blockdev", "numberOfReplicas": 1}
        body.update(spec)
        return self.store.create(self.rtype("volumes"), {"metadata": {"name": name, "namespace": NS}, "spec": body})

    def write_files(self, volume_name, files):
        root = self.ctx.volume_data_dir(volume_name)
        for rel, content in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
        return root

    def snapshot(self, volume_name, name, labels=None, timeout=15.0):
        self.create("snapshots", name, {"volume": volume_name, "createSnapshot": True, "labels": labels or {}})
        return wait_for(lambda: (self.get("snapshots", name) or {}).get("status", {}).get("readyToUse") and self.get("snapshots", name),
                        timeout, what="snapshot %s ready" % name)

    def backup(self, snapshot_name, name, labels=None, mode=None, wait=True, timeout=20.0):
        spec = {"snapshotName": snapshot_name, "labels": labels or {}}
        if mode is not None:
            spec["backupMode"] = mode
        self.create("backups", name, spec)
        if not wait:
            return self.get("backups", name)
        return self.wait_backup(name, ("Completed",), timeout)

    def wait_backup(self, name, states, timeout=20.0):
        def _check():
            backup = self.get("backups", name)
            if backup is None:
                return None
            status = backup.get("status") or {}
            return backup if status.get("state") in states and status.get("lastSyncedAt") else None
        return wait_for(_check, timeout, what="backup %s in %s" % (name, states))

    def write_remote_backup(self, volume_name, backup_name, image, size, labels=None, snapshot_created_at=None):
        """A backup written with BackupWriter, as another cluster would have left it in the bucket."""
        writer = self.backupstore().begin_backup(volume_name, backup_name, compression="lz4", volume_size=size)
        writer.write_image(image)
        return writer.finish(snapshot_name="snap-" + backup_name, snapshot_created_at=snapshot_created_at or rfc3339(),
                             created_at=rfc3339(), volume_size=size, labels=labels or {})


@pytest.fixture
def env_factory(seeded_cluster):
    started = []

    def _start(**config):
        running = BackupEnv(seeded_cluster, **config)
        started.append(running)
        return running
    yield _start
    for running in started:
        running.stop()


@pytest.fixture
def env(env_factory):
    return env_factory()


def image_of(files, size=8 * MIB, tmp=None):
    """The data image a volume with these files has (volumedata's deterministic layout)."""
    root = os.path.join(tmp, "img-%s" % uuid.uuid4().hex[:6])
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
    return volumedata.image_from_dir(root, size)


def test_env_runs_the_backup_side_controllers(env):
    names = [c.name for c in env.manager.controllers()]
    assert names == ["longhorn-setting", "longhorn-default-resource", "longhorn-backup-target", "longhorn-backup-volume",
                     "longhorn-snapshot", "longhorn-backup", "longhorn-recurring-job", "stand-in-attacher"]


def test_env_target_becomes_available_and_synced(env):
    target = env.configure_target()
    assert target["status"]["available"] is True
    assert target["status"]["lastSyncedAt"]
