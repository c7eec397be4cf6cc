# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot images: the data of a volume frozen at snapshot time (ref §1.6).

A snapshot is stored as the volume's block image (volumedata.image_from_dir)
under ``<state>/snapshots/<volume>/<snapshot>.img``; backups read it back.
"""

from __future__ import annotations

import os
import shutil

from ..context import LONGHORN_NAMESPACE
from . import volumedata


class SnapshotMissing(Exception):
    """No captured image for that snapshot."""


def image_path(ctx, volume_name, snapshot_name):
    return ctx.config.path("snapshots", volume_name, snapshot_name + ".img")


def _volume_size(ctx, volume_name):
    rtype = ctx.store.registry.by_plural("volumes", "longhorn.io")
    volume = ctx.store.try_get(rtype, LONGHORN_NAMESPACE, volume_name) if rtype is not None else None
    if volume is None:
        raise SnapshotMissing('volumes.longhorn.io "%s" not found' % volume_name)
    return int(str((volume.get("spec") or {}).get("size") or "0"))


def capture(ctx, volume_name, snapshot_name):
    """Freeze the volume's current data as the snapshot's image."""
    image = volumedata.image_from_dir(ctx.volume_data_dir(volume_name), _volume_size(ctx, volume_name))
    path = image_path(ctx, volume_name, snapshot_name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "wb") as handle:
        handle.write(image)
    os.replace(partial, path)


def exists(ctx, volume_name, snapshot_name):
    return os.path.exists(image_path(ctx, volume_name, snapshot_name))


def read(ctx, volume_name, snapshot_name):
    path = image_path(ctx, volume_name, snapshot_name)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise SnapshotMissing("snapshot %s of volume %s has no data" % (snapshot_name, volume_name)) from None


def delete(ctx, volume_name, snapshot_name):
    try:
        os.remove(image_path(ctx, volume_name, snapshot_name))
    except FileNotFoundError:
        pass


def delete_all(ctx, volume_name):
    shutil.rmtree(ctx.config.path("snapshots", volume_name), ignore_errors=True)
