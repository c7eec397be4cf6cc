# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot controller (ref §1.6): take snapshots asked for by Snapshot CRs, auto-attaching the volume.

Modelled on ``lm@v1.10.2:controller/snapshot_controller.go`` ``reconcile``; the engine's
snapshot is the captured data image of snapshots.py.
"""

from __future__ import annotations

from ..controllers.runtime import Controller
from . import attachments, common, snapshots, volumedata
from .attachments import LAB_NODE
from .backup_controller import add_any_ticket, remove_ticket
from .common import LOG

TICKET_TYPE = attachments.SNAPSHOT_CONTROLLER
LABEL_VOLUME = "longhornvolume"
ERROR_LOST = "lost track of the corresponding snapshot info inside volume engine"
VOLUME_HEAD = "volume-head"


def ticket_id(snapshot_name):
    return "%s-%s" % (TICKET_TYPE, snapshot_name)


def engine_name(volume_name):
    return "%s-e-0" % volume_name


class SnapshotController(Controller):
    name = "longhorn-snapshot"
    watches = (("longhorn.io", "snapshots"), ("longhorn.io", "volumeattachments"))

    def keys_for(self, event):
        if event.rtype_key == ("longhorn.io", "snapshots"):
            return super().keys_for(event)
        # A VolumeAttachment changed: snapshots of that volume waiting for their ticket may go on.
        volume_name = (event.obj.get("spec") or {}).get("volume") or event.obj["metadata"]["name"]
        waiting = set(((event.obj.get("spec") or {}).get("attachmentTickets") or {}))
        keys = []
        for ticket in waiting:
            if ticket.startswith(TICKET_TYPE + "-"):
                keys.append(("longhorn.io", "snapshots", event.obj["metadata"].get("namespace", ""), ticket[len(TICKET_TYPE) + 1:]))
        LOG.debug("volume attachment %s changed: %d snapshot(s) to look at", volume_name, len(keys))
        return keys

    def initial_keys(self):
        return [key for key in super().initial_keys() if key[1] == "snapshots"]

    def reconcile(self, key):
        if key[1] != "snapshots":
            return None
        store = self.store
        name = key[3]
        snap = common.get(store, "snapshots", name)
        if snap is None:
            return None
        volume_name = (snap.get("spec") or {}).get("volume") or ""
        if snap["metadata"].get("deletionTimestamp"):
            return self._finalize(snap, volume_name)
        status = snap.get("status") or {}
        requested = bool((snap.get("spec") or {}).get("createSnapshot"))
        created_before = bool(status.get("creationTime"))
        updates = {}
        if status.get("ownerID") != LAB_NODE:
            updates["ownerID"] = LAB_NODE
        try:
            if requested and not created_before and not snapshots.exists(self.ctx, volume_name, name):
                volume = common.get(store, "volumes", volume_name)
                if volume is None:
                    updates["error"] = 'volume.longhorn.io "%s" not found' % volume_name
                    return None
                add_any_ticket(store, volume_name, ticket_id(name), TICKET_TYPE, (volume.get("status") or {}).get("ownerID") or LAB_NODE)
                if not attachments.ticket_satisfied(store, volume_name, ticket_id(name)):
                    updates["error"] = "failed to take snapshot because the volume engine %s is not running. " \
                                       "Waiting for the volume to be attached" % engine_name(volume_name)
                    return None
                try:
                    snapshots.capture(self.ctx, volume_name, name)
                except Exception as exc:  # pylint: disable=broad-except
                    updates["error"] = str(exc)
                    return 2.0
                updates["creationTime"] = common.rfc3339()
            if not snapshots.exists(self.ctx, volume_name, name):
                if not requested or created_before:
                    updates["error"] = ERROR_LOST
                updates["readyToUse"] = False
                return None
            updates.update(self._snapshot_info(snap, volume_name, updates.get("creationTime") or status.get("creationTime")))
            return None
        finally:
            if updates:
                common.update_status(store, "snapshots", name, lambda s: s.update(updates))
            if not requested or created_before:
                remove_ticket(store, volume_name, ticket_id(name))

    def _snapshot_info(self, snap, volume_name, creation_time):
        """syncSnapshotWithSnapshotInfo from what the engine would report for this snapshot."""
        name = snap["metadata"]["name"]
        status = snap.get("status") or {}
        image = snapshots.read(self.ctx, volume_name, name)
        size = sum(len(block) for _offset, block in volumedata.split_blocks(image))
        volume = common.get(self.store, "volumes", volume_name) or {}
        info = {
            "creationTime": creation_time,
            "size": size,
            "restoreSize": int(str((volume.get("spec") or {}).get("size") or len(image))),
            "labels": dict((snap.get("spec") or {}).get("labels") or {}),
            "userCreated": True,
            "markRemoved": False,
            "readyToUse": True,
            "error": "",
        }
        if not status.get("creationTime"):
            parent = self._latest_other_snapshot(volume_name, name)
            info["parent"] = parent or ""
            info["children"] = {VOLUME_HEAD: True}
            if parent:
                def _relink(parent_status):
                    children = dict(parent_status.get("children") or {})
                    children.pop(VOLUME_HEAD, None)
                    children[name] = True
                    parent_status["children"] = children
                common.update_status(self.store, "snapshots", parent, _relink)
        return info

    def _latest_other_snapshot(self, volume_name, name):
        latest = None
        for other in common.list_objects(self.store, "snapshots", "%s=%s" % (LABEL_VOLUME, volume_name)):
            other_status = other.get("status") or {}
            if other["metadata"]["name"] == name or not other_status.get("creationTime") or other["metadata"].get("deletionTimestamp"):
                continue
            if latest is None or other_status["creationTime"] >= (latest.get("status") or {})["creationTime"]:
                latest = other
        return latest["metadata"]["name"] if latest else None

    def _finalize(self, snap, volume_name):
        store = self.store
        name = snap["metadata"]["name"]
        volume = common.get(store, "volumes", volume_name)
        if volume is None or volume["metadata"].get("deletionTimestamp") or not snapshots.exists(self.ctx, volume_name, name):
            snapshots.delete(self.ctx, volume_name, name)
            remove_ticket(store, volume_name, ticket_id(name))
            common.remove_finalizer(store, "snapshots", name)
            return None
        # Purging a snapshot needs a running engine: attach for it (handleAttachmentTicketCreation(snap, true)).
        add_any_ticket(store, volume_name, ticket_id(name), TICKET_TYPE, (volume.get("status") or {}).get("ownerID") or LAB_NODE)
        if not attachments.ticket_satisfied(store, volume_name, ticket_id(name)):
            return None
        snapshots.delete(self.ctx, volume_name, name)
        remove_ticket(store, volume_name, ticket_id(name))
        common.remove_finalizer(store, "snapshots", name)
        return None


CONTROLLERS = [SnapshotController]
