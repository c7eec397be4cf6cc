# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission rules of SystemBackup and SystemRestore (ref §1.7, §1.8).

Modelled on ``lm@v1.10.2:webhook/resources/systembackup/{mutator,validator}.go`` and
``webhook/resources/systemrestore/validator.go``. SystemRestore has no mutator upstream,
so it gets no finalizer.
"""

from __future__ import annotations

import urllib.parse

from ..context import LONGHORN_NAMESPACE
from .volume_webhooks import VALIDATOR, deny, not_found_text

SYSTEM_BACKUPS = ("longhorn.io", "systembackups")
SYSTEM_RESTORES = ("longhorn.io", "systemrestores")
VOLUMES = ("longhorn.io", "volumes")
BACKUP_TARGETS = ("longhorn.io", "backuptargets")

LONGHORN_FINALIZER = "longhorn.io"
DEFAULT_BACKUP_TARGET = "default"
POLICY_IF_NOT_PRESENT = "if-not-present"
# ref §1.8: datastore ListSystemRestoresInProgress selects on this label.
SYSTEM_RESTORE_LABEL = "longhorn.io/system-restore"
SYSTEM_RESTORE_IN_PROGRESS = "InProgress"
# ref §1.1: types.BackupStoreRequireCredential.
SCHEMES_REQUIRING_CREDENTIAL = ("s3", "cifs", "azblob")
SUPPORTED_SCHEMES = ("s3", "nfs", "cifs", "azblob")


def _rtype(store, key):
    return store.registry.by_plural(key[1], key[0])


def _default_target(store):
    rtype = _rtype(store, BACKUP_TARGETS)
    return store.try_get(rtype, LONGHORN_NAMESPACE, DEFAULT_BACKUP_TARGET) if rtype is not None else None


def _mutate_system_backup(store, request):
    obj = request.obj
    meta = obj.setdefault("metadata", {})
    finalizers = meta.get("finalizers") or []
    if LONGHORN_FINALIZER not in finalizers and not meta.get("deletionTimestamp"):
        meta["finalizers"] = finalizers + [LONGHORN_FINALIZER]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    # ref §1.7: "" becomes if-not-present.
    if not spec.get("volumeBackupPolicy"):
        spec["volumeBackupPolicy"] = POLICY_IF_NOT_PRESENT
    if request.operation == "CREATE" and not meta.get("ownerReferences"):
        # System backups always belong to the default target (systembackup mutator).
        target = _default_target(store)
        if target is not None:
            meta["ownerReferences"] = [{"apiVersion": "longhorn.io/v1beta2", "kind": "BackupTarget",
                                        "name": target["metadata"]["name"], "uid": target["metadata"]["uid"]}]


def _validate_system_backup(store):
    """ref §1.7: refused unless BackupTarget default is available and, for s3/cifs/azblob, has a credential secret."""
    target = _default_target(store)
    if target is None:
        raise deny(VALIDATOR, not_found_text("backuptarget", DEFAULT_BACKUP_TARGET), code=400)
    if not (target.get("status") or {}).get("available"):
        raise deny(VALIDATOR, "backup target %s is not available" % DEFAULT_BACKUP_TARGET)
    spec = target.get("spec") or {}
    url = spec.get("backupTargetURL") or ""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        # util.CheckBackupType
        raise deny(VALIDATOR, "unsupported backup type: %s" % url if url else "cannot get backup type from empty backup target URL", code=400)
    if scheme in SCHEMES_REQUIRING_CREDENTIAL and not spec.get("credentialSecret"):
        raise deny(VALIDATOR, "cannot access %s without credential secret" % scheme, code=400)


def _validate_system_restore(store, obj):
    """ref §1.8: all volumes detached, no other restore in progress, the SystemBackup exists."""
    volumes_rtype = _rtype(store, VOLUMES)
    volumes = store.list(volumes_rtype, LONGHORN_NAMESPACE)[0] if volumes_rtype is not None else []
    not_detached = ["%s (%s)" % (v["metadata"]["name"], (v.get("status") or {}).get("state") or "unknown")
                    for v in volumes if (v.get("status") or {}).get("state") != "detached"]
    if not_detached:
        # Upstream's message has no list; the lab names the volumes so the failure is actionable.
        raise deny(VALIDATOR, "all volumes need to be detached before creating SystemRestore: %s" % ", ".join(not_detached))
    restores_rtype = _rtype(store, SYSTEM_RESTORES)
    in_progress = store.list(restores_rtype, LONGHORN_NAMESPACE,
                             label_selector="%s=%s" % (SYSTEM_RESTORE_LABEL, SYSTEM_RESTORE_IN_PROGRESS))[0]
    if in_progress:
        raise deny(VALIDATOR, "found %d SystemRestore in progress" % len(in_progress))
    name = (obj.get("spec") or {}).get("systemBackup") or ""
    backups_rtype = _rtype(store, SYSTEM_BACKUPS)
    if backups_rtype is None or store.try_get(backups_rtype, LONGHORN_NAMESPACE, name) is None:
        raise deny(VALIDATOR, not_found_text("systembackup", name))


def register(chain, ctx):
    """Install the SystemBackup mutator/validator and the SystemRestore validator on ``chain`` (reads through ``ctx.store``)."""
    store = ctx.store

    def mutate(request):
        if request.rtype.key == SYSTEM_BACKUPS and request.subresource is None and request.operation in ("CREATE", "UPDATE"):
            _mutate_system_backup(store, request)

    def validate(request):
        if request.subresource is not None or request.operation != "CREATE":
            return
        if request.rtype.key == SYSTEM_BACKUPS:
            _validate_system_backup(store)
        elif request.rtype.key == SYSTEM_RESTORES:
            _validate_system_restore(store, request.obj)

    chain.add_mutator(mutate)
    chain.add_validator(validate)
