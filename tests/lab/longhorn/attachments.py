# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Volume attachment tickets, as Longhorn >= 1.5 tracks them.

Every party that needs a volume attached (the CSI attacher for a pod, the
snapshot/backup controllers, the restore) adds a ticket to the longhorn.io
VolumeAttachment named after the volume; the volume controller attaches while
any ticket exists and detaches when none is left (ref §1.3 "Detached volumes are
fine", §1.5 restore step 2, §1.6).
"""

from __future__ import annotations

from .. import api_errors as errors
from ..context import LONGHORN_NAMESPACE

VOLUME_ATTACHMENTS = ("longhorn.io", "volumeattachments")
LAB_NODE = "lab-node-1"

# Ticket types used by longhorn-manager (lm@v1.10.2:k8s/pkg/apis/longhorn/v1beta2/volumeattachment.go).
CSI_ATTACHER = "csi-attacher"
LONGHORN_API = "longhorn-api"
SNAPSHOT_CONTROLLER = "snapshot-controller"
BACKUP_CONTROLLER = "backup-controller"
RESTORE_CONTROLLER = "volume-restore-controller"


def _rtype(store):
    rtype = store.registry.by_plural("volumeattachments", "longhorn.io")
    if rtype is None:
        raise errors.NotFound("customresourcedefinitions", "volumeattachments.longhorn.io", "apiextensions.k8s.io")
    return rtype


def ensure_volume_attachment(store, volume_name):
    rtype = _rtype(store)
    existing = store.try_get(rtype, LONGHORN_NAMESPACE, volume_name)
    if existing is not None:
        return existing
    try:
        return store.create(rtype, {
            "metadata": {"name": volume_name, "namespace": LONGHORN_NAMESPACE, "labels": {"longhornvolume": volume_name}},
            "spec": {"attachmentTickets": {}, "volume": volume_name},
        }, user="longhorn-manager")
    except errors.AlreadyExists:
        return store.get(rtype, LONGHORN_NAMESPACE, volume_name)


def add_ticket(store, volume_name, ticket_id, ticket_type, node_id=LAB_NODE, disable_frontend=False):
    ensure_volume_attachment(store, volume_name)

    def _add(obj):
        tickets = obj["spec"].setdefault("attachmentTickets", {}) or {}
        obj["spec"]["attachmentTickets"] = tickets
        if ticket_id not in tickets:
            tickets[ticket_id] = {"id": ticket_id, "type": ticket_type, "nodeID": node_id, "generation": 0,
                                  "parameters": {"disableFrontend": "true" if disable_frontend else "false"}}
    return store.modify(_rtype(store), LONGHORN_NAMESPACE, volume_name, _add, user="longhorn-manager")


def remove_ticket(store, volume_name, ticket_id):
    rtype = _rtype(store)
    if store.try_get(rtype, LONGHORN_NAMESPACE, volume_name) is None:
        return None

    def _remove(obj):
        (obj["spec"].get("attachmentTickets") or {}).pop(ticket_id, None)
    return store.modify(rtype, LONGHORN_NAMESPACE, volume_name, _remove, user="longhorn-manager")


def tickets(store, volume_name):
    obj = store.try_get(_rtype(store), LONGHORN_NAMESPACE, volume_name)
    return dict(((obj or {}).get("spec") or {}).get("attachmentTickets") or {})


def ticket_satisfied(store, volume_name, ticket_id):
    """A ticket is satisfied once the volume controller attached the volume for it."""
    obj = store.try_get(_rtype(store), LONGHORN_NAMESPACE, volume_name)
    statuses = ((obj or {}).get("status") or {}).get("attachmentTicketStatuses") or {}
    return bool(statuses.get(ticket_id, {}).get("satisfied"))
