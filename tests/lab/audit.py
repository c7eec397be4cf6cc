# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's API audit log: one JSON object per line for each request the API proxy relays.

Only the request line and its outcome are kept, never a body: Secret values cannot reach the log.
"""

from __future__ import annotations

import datetime
import json
import os
import threading


class AuditLog:
    """Thread-safe JSON-lines writer, flushed per line."""

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

    def record(self, *, verb, method, path, query, dry_run, write, code, user_agent):
        entry = {
            "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "verb": verb,
            "method": method,
            "path": path,
            "query": query,
            "dryRun": bool(dry_run),
            "write": bool(write),
            "code": code,
            "user_agent": user_agent,
        }
        line = json.dumps(entry, sort_keys=True, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self):
        with self._lock:
            if not self._file.closed:
                self._file.close()


def read_audit(path):
    """All entries of an audit log, oldest first."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
