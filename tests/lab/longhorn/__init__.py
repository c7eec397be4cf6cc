# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Longhorn emulator: CRDs, backupstore layout on S3, volume data and controllers."""

from __future__ import annotations

import os

CRDS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crds.yaml")
CRDS_EXTRA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crds_extra.yaml")


def load_manifest(path=CRDS_PATH):
    """The objects of a manifest file, with ``kind: List`` documents flattened into their items."""
    import yaml  # pylint: disable=import-outside-toplevel

    objects = []
    with open(path, encoding="utf-8") as handle:
        for document in yaml.safe_load_all(handle):
            if not document:
                continue
            if document.get("kind") == "List":
                objects.extend(item for item in document.get("items") or [] if item)
            else:
                objects.append(document)
    return objects
