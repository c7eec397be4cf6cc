# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 4, Speed: "No task in the roles loops over volumes".

Every ``roles/*/tasks/*.yml`` is parsed, and each task with ``loop`` or ``with_*`` (also inside
``block``/``rescue``/``always``) is judged by a heuristic: its items are volumes or claims when

* the loop expression mentions volume, pvc or claim, unless it ends by mapping the items to a
  namespace attribute (``... | map(attribute='pvc_namespace') | unique``: a loop over namespaces), or
* the loop label or the task's arguments use an attribute of the loop variable that names a
  volume, PV, PVC or claim (``item.new_volume``, ``item.pvc_name``, ``item.old_pv_to_delete``).

A loop over namespaces, workloads or checks is allowed: its count does not grow with the number
of volumes. A per-volume loop costs one module run (seconds) per volume, where the collection's
modules take the whole batch in one run.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = REPO_ROOT / "roles"
BLOCK_KEYS = ("block", "rescue", "always")
VOLUME_WORDS = re.compile(r"volume|pvc|claim", re.IGNORECASE)
# ``map(attribute='...namespace')`` (then perhaps unique/sort/list): the items are namespaces.
NAMESPACE_MAP = re.compile(r"map\(\s*attribute\s*=\s*['\"][\w.]*namespace['\"]\s*\)(\s*\|\s*(unique|sort|list)(\(\))?)*\s*\}\}\s*$")
VOLUME_ATTRIBUTE = r"\b%s\.(\w*(volume|pvc|claim|_pv\b|pv_)\w*)"


def loop_expression(task):
    if "loop" in task:
        return "loop", task["loop"]
    for key, value in task.items():
        if key.startswith("with_"):
            return key, value
    return None, None


def iter_tasks(tasks, path):
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in BLOCK_KEYS:
            if isinstance(task.get(key), list):
                yield from iter_tasks(task[key], path)


def volume_loop_reason(task):
    """Why the task loops over volumes or claims, or None."""
    keyword, expression = loop_expression(task)
    if keyword is None:
        return None
    text = expression if isinstance(expression, str) else json.dumps(expression)
    if VOLUME_WORDS.search(text) and not NAMESPACE_MAP.search(text):
        return "%s: %s" % (keyword, text.strip())
    loop_var = (task.get("loop_control") or {}).get("loop_var") or "item"
    body = {key: value for key, value in task.items() if key not in ("loop", "loop_control", "name") and not key.startswith("with_")}
    label = (task.get("loop_control") or {}).get("label") or ""
    for where, content in (("label", str(label)), ("arguments", json.dumps(body))):
        found = re.search(VOLUME_ATTRIBUTE % re.escape(loop_var), content)
        if found:
            return "%s over %s uses %s.%s in its %s" % (keyword, text.strip(), loop_var, found.group(1), where)
    return None


def volume_loops(tasks_file):
    """[(task name, reason)] for the tasks of one file that loop over volumes or claims."""
    with open(tasks_file, encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle) or []
    found = []
    for task in iter_tasks(tasks, tasks_file):
        reason = volume_loop_reason(task)
        if reason:
            found.append((task.get("name", "(unnamed)"), reason))
    return found


def role_findings(role):
    return ["%s: %r %s" % (path.relative_to(REPO_ROOT), name, reason)
            for path in sorted((ROLES / role / "tasks").glob("*.yml")) for name, reason in volume_loops(path)]


# ---- the heuristic itself --------------------------------------------------------------------
def _task(text):
    return yaml.safe_load(text)[0]


@pytest.mark.parametrize("text", [
    '- {name: per volume, ansible.builtin.include_tasks: one.yml, loop: "{{ restore_cluster_plan.volumes }}"}',
    '- {name: per claim, kubernetes.core.k8s: {name: "{{ item }}"}, with_items: "{{ restore_cluster_claims }}"}',
    '- {name: per pvc, kubernetes.core.k8s: {name: "{{ item.name }}"}, loop: "{{ expected_pvcs }}"}',
    '- {name: per entry, kubernetes.core.k8s: {name: "{{ item.pvc_name }}"}, loop: "{{ plan.entries }}"}',
    '- {name: per entry, kubernetes.core.k8s: {name: "{{ entry.volume }}"}, loop: "{{ plan.entries }}", loop_control: {loop_var: entry}}',
    '- {name: per todo, kubernetes.core.k8s: {}, loop: "{{ todo }}", loop_control: {label: "{{ item.new_volume }}"}}',
    '- {name: per old pv, kubernetes.core.k8s: {name: "{{ item.old_pv_to_delete }}"}, loop: "{{ todo }}"}',
    '- {name: volumes of namespaces, kubernetes.core.k8s: {}, loop: "{{ plan.entries | map(attribute=\'volume\') | list }}"}',
    '- {block: [{name: nested, kubernetes.core.k8s: {}, loop: "{{ volumes }}"}]}',
])
def test_flags_loops_over_volumes(tmp_path, text):
    path = tmp_path / "main.yml"
    path.write_text(text + "\n", encoding="utf-8")
    assert volume_loops(path), text


@pytest.mark.parametrize("text", [
    '- {name: namespaces, kubernetes.core.k8s: {name: "{{ item }}"}, '
    'loop: "{{ restore_cluster_plan.entries | map(attribute=\'pvc_namespace\') | unique | sort }}"}',
    '- {name: workloads, kubernetes.core.k8s_scale: {name: "{{ item.name }}", kind: "{{ item.kind }}"}, loop: "{{ plan.workloads }}"}',
    '- {name: kinds, kubernetes.core.k8s_info: {kind: "{{ item }}"}, loop: [Deployment, StatefulSet]}',
    '- {name: batch, homelab.longhorn_dr.longhorn_volume_restore: {volumes: "{{ restore_cluster_plan.volumes }}"}}',
])
def test_allows_other_loops_and_batches(tmp_path, text):
    path = tmp_path / "main.yml"
    path.write_text(text + "\n", encoding="utf-8")
    assert volume_loops(path) == [], text


def test_restore_cluster_namespace_loop_is_seen_and_allowed():
    """The role's one loop (over the PVC namespaces) is found by the parser and not flagged."""
    with open(ROLES / "restore_cluster" / "tasks" / "volumes.yml", encoding="utf-8") as handle:
        tasks = list(iter_tasks(yaml.safe_load(handle), "volumes.yml"))
    loops = [task for task in tasks if loop_expression(task)[0]]
    assert len(loops) == 1 and "pvc_namespace" in loops[0]["loop"], loops
    assert volume_loop_reason(loops[0]) is None


# ---- the roles ---------------------------------------------------------------------------------
@pytest.mark.parametrize("role", sorted(path.name for path in ROLES.iterdir() if (path / "tasks").is_dir()))
def test_no_role_task_loops_over_volumes(role):
    findings = role_findings(role)
    assert findings == [], "tasks that loop over volumes or claims:\n  " + "\n  ".join(findings)
