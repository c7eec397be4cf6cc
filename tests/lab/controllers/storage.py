# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What Longhorn's CSI sidecars read of Kubernetes' storage objects.

Resource keys, the annotations kube-controller-manager's PV controller puts on claims and
volumes, and ``resource.Quantity`` arithmetic, as csi-provisioner sees them
(``k8s.io/component-helpers/storage/volume`` and ``apimachinery/pkg/api/resource``).
"""

from __future__ import annotations

import fractions
import re

PVS = ("", "persistentvolumes")
PVCS = ("", "persistentvolumeclaims")
STORAGE_CLASSES = ("storage.k8s.io", "storageclasses")

ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[kMGTPE]i|[mkMGTPE]|)$")
_SUFFIX = {"": 1, "m": fractions.Fraction(1, 1000), "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15,
           "E": 10 ** 18, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def parse_quantity(value):
    """A resource.Quantity as an exact Fraction (``"1Gi"``, ``"500M"``, ``"1.5e3"``, ``10``)."""
    if isinstance(value, (int, float)):
        return fractions.Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': %r" % value)
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E"):
        return fractions.Fraction(number) * fractions.Fraction(10) ** int(suffix[1:])
    return fractions.Fraction(number) * _SUFFIX[suffix]


def quantity_value(value):
    """``Quantity.Value()``: the integer value, rounded up."""
    frac = parse_quantity(value)
    return -((-frac.numerator) // frac.denominator)


def format_binary(size):
    """``resource.NewQuantity(size, BinarySI).String()`` for a byte count."""
    size = int(size)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _SUFFIX[suffix]
        if size and size % unit == 0:
            return "%d%s" % (size // unit, suffix)
    return str(size)


def claim_class(claim):
    """storagehelpers.GetPersistentVolumeClaimClass: the beta annotation wins over the field."""
    annotations = claim["metadata"].get("annotations") or {}
    if ANN_BETA_STORAGE_CLASS in annotations:
        return annotations[ANN_BETA_STORAGE_CLASS]
    return (claim.get("spec") or {}).get("storageClassName") or ""


def claim_request(claim):
    requests = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {})
    return parse_quantity(requests.get("storage", 0))


def claim_reference(claim):
    """What ``ref.GetReference`` makes of a claim (PV.spec.claimRef)."""
    meta = claim["metadata"]
    return {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion", "")}


def volume_mode(spec):
    return (spec or {}).get("volumeMode") or "Filesystem"
