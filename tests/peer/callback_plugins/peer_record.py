# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Record every task result of a peer-check run as one JSON line, flushed as it happens.

Enabled by tests/peer/run_kubernetes_core_targets.py (ANSIBLE_CALLBACKS_ENABLED=peer_record,
PEER_RECORD_FILE=<path>).  Unlike ansible.posix.json (one document at the end) a target killed
by its timeout still leaves the results it reached; unlike ansible.posix.jsonl it records
whether a failure was ignored (``ignore_errors``), which the pass counts depend on.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: peer_record
    type: aggregate
    short_description: one JSON line per task result, for the peer-check runner
    description: Writes to the file named by the PEER_RECORD_FILE environment variable.
    requirements: [enable in configuration]
'''


def _short(value, limit=2000):
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + '...'


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'peer_record'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get('PEER_RECORD_FILE')
        self._out = open(path, 'a', encoding='utf-8') if path else None  # pylint: disable=consider-using-with

    def _write(self, record):
        if self._out is None:
            return
        record['time'] = time.time()
        self._out.write(json.dumps(record, default=str, sort_keys=True) + '\n')
        self._out.flush()

    def _result(self, event, result, ignore_errors=False):
        task = result._task  # pylint: disable=protected-access
        body = result._result  # pylint: disable=protected-access
        record = {
            'event': event,
            'task': task.get_name(),
            'path': task.get_path(),
            'action': task.action,
            'changed': bool(body.get('changed')),
            'ignored': bool(ignore_errors),
        }
        if event in ('failed', 'unreachable'):
            message = body.get('msg') or body.get('stderr') or body.get('exception') or ''
            if not message and isinstance(body.get('results'), list):  # a loop: the first failed item's message
                for item in body['results']:
                    if isinstance(item, dict) and item.get('failed'):
                        message = item.get('msg') or item.get('stderr') or ''
                        break
            record['msg'] = _short(message)
            if body.get('assertion'):
                record['assertion'] = _short(body['assertion'])
        self._write(record)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write({'event': 'start', 'task': task.get_name(), 'path': task.get_path()})

    def v2_runner_on_ok(self, result):
        self._result('ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result('failed', result, ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._result('skipped', result)

    def v2_runner_on_unreachable(self, result):
        self._result('unreachable', result)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._write({'event': 'stats', 'stats': summary})
        if self._out is not None:
            self._out.close()
            self._out = None
