# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault injection shared by the API proxy and the Longhorn emulator.

S3 faults live on the S3 server itself (``S3Server.faults``); bucket damage
(corrupt or missing blocks) is done by the lab on the stored objects.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass


@dataclass
class ApiFault:
    id: int
    path: str                 # regular expression searched in the request path
    methods: tuple            # empty: every method
    status: int               # 500, 503, 429 ... ; ignored when timeout is set
    timeout: float            # >0: hold the request this long, then drop the connection
    remaining: int | None     # None: until cleared

    def to_dict(self):
        return {"id": self.id, "path": self.path, "methods": list(self.methods), "status": self.status,
                "timeout": self.timeout, "remaining": self.remaining}


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._api = []
        self.restore_failures = set()     # volume names whose Longhorn restore fails
        self.backup_failures = set()      # volume names whose backups end in Error

    def add_api_fault(self, path, *, status=500, methods=(), timeout=0.0, count=None):
        fault = ApiFault(next(self._ids), path, tuple(m.upper() for m in methods), status, timeout, count)
        re.compile(path)
        with self._lock:
            self._api.append(fault)
        return fault

    def api_fault_for(self, method, path):
        """The first active fault matching this request; consumes one use of counted faults."""
        with self._lock:
            for fault in self._api:
                if fault.methods and method.upper() not in fault.methods:
                    continue
                if not re.search(fault.path, path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._api.remove(fault)
                return fault
        return None

    def api_faults(self):
        with self._lock:
            return [f.to_dict() for f in self._api]

    def fail_restore(self, volume_name):
        with self._lock:
            self.restore_failures.add(volume_name)

    def fail_backup(self, volume_name):
        with self._lock:
            self.backup_failures.add(volume_name)

    def clear(self):
        with self._lock:
            self._api = []
            self.restore_failures.clear()
            self.backup_failures.clear()
