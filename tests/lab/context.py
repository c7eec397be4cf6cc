# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Configuration and the shared context handed to every lab controller."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

LONGHORN_NAMESPACE = "longhorn-system"


@dataclass
class LabConfig:
    state_dir: str
    bucket: str = "longhorn-backups"
    region: str = "us-east-1"
    object_lock: bool = False
    # Longhorn version the lab presents; "v1.7.2" (or legacy=True) gives the <=1.7 Settings path (ref §1.2).
    longhorn_version: str = "v1.10.2"
    legacy_backup_target_settings: bool = False
    # Throughput in MB/s of emulated backup/restore data movement; 0 means instant.
    backup_speed_mbps: float = 0.0
    restore_speed_mbps: float = 0.0
    # How fast emulated state machines step (seconds between SystemBackup/Restore states etc.).
    step_delay: float = 0.05
    api_port: int = 0
    s3_port: int = 0

    @property
    def longhorn_minor(self):
        major, minor = self.longhorn_version.lstrip("v").split(".")[:2]
        return int(major), int(minor)

    @property
    def uses_backup_target_settings(self):
        """Up to v1.7 the backup-target Settings are the source of truth (ref §1.2)."""
        return self.legacy_backup_target_settings or self.longhorn_minor <= (1, 7)

    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)


@dataclass
class LabContext:
    """What controllers get: the store, the config, S3 access and the fault registry."""

    config: LabConfig
    store: object
    s3: object = None
    faults: object = None
    extras: dict = field(default_factory=dict)

    @property
    def registry(self):
        return self.store.registry

    def volume_data_dir(self, volume_name):
        """Node-local data of a Longhorn volume: a directory (ref: issue 2 §4d)."""
        path = self.config.path("volumes", volume_name)
        os.makedirs(path, exist_ok=True)
        return path

    def s3_client(self, access_key=None, secret_key=None, endpoint=None):
        return self.s3.client(access_key=access_key, secret_key=secret_key, endpoint=endpoint)
