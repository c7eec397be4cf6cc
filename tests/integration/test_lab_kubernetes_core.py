# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real kubernetes.core modules (ansible-playbook) against the lab's Kubernetes API.

Every test gets a fresh lab (the ``lab`` fixture): API server, admission chain
(CRD schemas, built-in validation, Longhorn webhooks) and controllers.  The
tests assert on task results, on the lab's store and on its audit log.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from tests.integration.helpers import wait_until

pytestmark = pytest.mark.integration

NAMESPACE = "kc-test"


def _playbook(tmp_path, name, tasks):
    path = tmp_path / name
    path.write_text(textwrap.dedent("""\
        ---
        - name: kubernetes.core against the lab API
          hosts: localhost
          gather_facts: false
          module_defaults:
            group/kubernetes.core.k8s:
              kubeconfig: "{{ lab_kubeconfig }}"
          tasks:
        """) + textwrap.indent(textwrap.dedent(tasks), "    "), encoding="utf-8")
    return str(path)


RESOURCES_TASKS = """\
- name: Namespace
  kubernetes.core.k8s:
    state: "{{ wanted | default('present') }}"
    api_version: v1
    kind: Namespace
    name: kc-test

- name: ConfigMap
  kubernetes.core.k8s:
    state: "{{ wanted | default('present') }}"
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: settings, namespace: kc-test, labels: {app: longhorn-dr, role: settings}}
      data: {retention: "{{ retention | default('7') }}"}

- name: Deployment
  kubernetes.core.k8s:
    state: "{{ wanted | default('present') }}"
    definition:
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: web, namespace: kc-test}
      spec:
        replicas: 1
        selector: {matchLabels: {app: web}}
        template:
          metadata: {labels: {app: web}}
          spec:
            containers:
              - name: app
                image: "nginx:{{ tag | default('1.27') }}"
                env: [{name: MODE, value: lab}]

- name: RecurringJob
  kubernetes.core.k8s:
    state: "{{ wanted | default('present') }}"
    definition:
      apiVersion: longhorn.io/v1beta2
      kind: RecurringJob
      metadata: {name: nightly, namespace: longhorn-system}
      spec: {task: backup, cron: "0 2 * * *", retain: "{{ retain | default(7) | int }}", concurrency: 1, groups: [default]}
"""


def _task(result, name):
    return result.task_result(name)


def test_k8s_create_idempotency_check_mode_and_absent(run_playbook, lab, tmp_path):
    playbook = _playbook(tmp_path, "resources.yml", RESOURCES_TASKS)
    first = run_playbook(playbook)
    assert first.rc == 0, first
    for name in ("Namespace", "ConfigMap", "Deployment", "RecurringJob"):
        assert _task(first, name)["changed"] is True, first
    assert lab.store.get("recurringjobs", "longhorn-system", "nightly")["spec"]["retain"] == 7
    assert lab.store.get("deployments", NAMESPACE, "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"

    second = run_playbook(playbook)
    assert second.rc == 0, second
    assert second.changed() == 0, second

    mark = len(lab.audit_entries())
    check = run_playbook(playbook, check=True, extra_vars={"retention": "30", "tag": "1.28", "retain": 14})
    assert check.rc == 0, check
    assert [n for n in ("Namespace", "ConfigMap", "Deployment", "RecurringJob") if _task(check, n)["changed"]] == [
        "ConfigMap", "Deployment", "RecurringJob"], check
    assert _task(check, "ConfigMap")["result"]["data"]["retention"] == "30"
    writes = [e for e in lab.audit_entries()[mark:] if e["write"]]
    assert writes and all(e["dryRun"] for e in writes), writes
    assert lab.store.get("configmaps", NAMESPACE, "settings")["data"]["retention"] == "7"
    assert lab.store.get("recurringjobs", "longhorn-system", "nightly")["spec"]["retain"] == 7

    absent = run_playbook(playbook, extra_vars={"wanted": "absent"})
    assert absent.rc == 0, absent
    assert _task(absent, "RecurringJob")["changed"] is True, absent
    assert lab.store.try_get("recurringjobs", "longhorn-system", "nightly") is None
    # A deleted namespace is Terminating until kube-controller-manager's namespace controller empties it.
    namespace = lab.store.try_get("namespaces", "", NAMESPACE)
    assert namespace is None or namespace["metadata"].get("deletionTimestamp"), namespace
    wait_until(lambda: lab.store.try_get("namespaces", "", NAMESPACE) is None, what="namespace kc-test gone", timeout=60)
    gone = run_playbook(playbook, extra_vars={"wanted": "absent"})
    assert gone.rc == 0 and gone.changed() == 0, gone


def test_k8s_update_of_a_custom_resource_falls_back_from_strategic_to_merge(run_playbook, lab, tmp_path):
    playbook = _playbook(tmp_path, "resources.yml", RESOURCES_TASKS)
    assert run_playbook(playbook).rc == 0
    mark = len(lab.audit_entries())
    updated = run_playbook(playbook, extra_vars={"retain": 3})
    assert updated.rc == 0, updated
    assert _task(updated, "RecurringJob")["changed"] is True and _task(updated, "RecurringJob")["method"] == "update", updated
    assert lab.store.get("recurringjobs", "longhorn-system", "nightly")["spec"]["retain"] == 3
    patches = [(e["path"].rsplit("/", 1)[-1], e["code"]) for e in lab.audit_entries()[mark:] if e["verb"] == "patch"]
    # kubernetes.core sends a strategic merge patch first (415 on a custom resource), then a merge patch.
    assert ("nightly", 415) in patches and patches[patches.index(("nightly", 415)) + 1] == ("nightly", 200), patches


def test_k8s_reports_the_api_servers_validation_error(run_playbook, lab, tmp_path):
    playbook = _playbook(tmp_path, "bad.yml", """\
        - name: Bad RecurringJob
          kubernetes.core.k8s:
            definition:
              apiVersion: longhorn.io/v1beta2
              kind: RecurringJob
              metadata: {name: bad, namespace: longhorn-system}
              spec: {task: bogus, cron: "0 2 * * *", retain: 1, concurrency: 1}
        """)
    result = run_playbook(playbook)
    assert result.rc != 0, result
    failed = _task(result, "Bad RecurringJob")
    assert failed["failed"] is True
    # The message carries the Status body as the client got it (bytes repr, quotes escaped).
    assert failed["msg"].startswith("Failed to create object: ") and "spec.task: Unsupported value: " in failed["msg"], failed
    assert "bogus" in failed["msg"] and "supported values: " in failed["msg"], failed
    assert failed["reason"] == "Unprocessable Entity"
    assert lab.store.try_get("recurringjobs", "longhorn-system", "bad") is None


def test_k8s_info_label_selectors_and_wait(run_playbook, lab, tmp_path):
    assert run_playbook(_playbook(tmp_path, "resources.yml", RESOURCES_TASKS)).rc == 0
    lab.store.create("configmaps", {"metadata": {"name": "other", "namespace": NAMESPACE, "labels": {"app": "longhorn-dr", "role": "x"}}})
    playbook = _playbook(tmp_path, "info.yml", """\
        - name: By label
          kubernetes.core.k8s_info:
            api_version: v1
            kind: ConfigMap
            namespace: kc-test
            label_selectors: [app=longhorn-dr, "role in (settings)"]
          register: by_label

        - name: By set-based label
          kubernetes.core.k8s_info:
            api_version: v1
            kind: ConfigMap
            namespace: kc-test
            label_selectors: ["app=longhorn-dr", "role notin (settings)"]

        - name: Wait for the CRD to be established
          kubernetes.core.k8s_info:
            api_version: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            name: recurringjobs.longhorn.io
            wait: true
            wait_timeout: 10
            wait_condition: {type: Established, status: "True"}

        - name: Custom resources across namespaces
          kubernetes.core.k8s_info:
            api_version: longhorn.io/v1beta2
            kind: RecurringJob

        - name: Missing kind
          kubernetes.core.k8s_info:
            api_version: longhorn.io/v1beta2
            kind: NoSuchKind
        """)
    result = run_playbook(playbook)
    assert result.rc == 0, result
    assert [r["metadata"]["name"] for r in _task(result, "By label")["resources"]] == ["settings"]
    assert [r["metadata"]["name"] for r in _task(result, "By set-based label")["resources"]] == ["other"]
    assert [r["metadata"]["name"] for r in _task(result, "Wait for the CRD to be established")["resources"]] == ["recurringjobs.longhorn.io"]
    assert [(r["metadata"]["namespace"], r["metadata"]["name"]) for r in _task(result, "Custom resources across namespaces")["resources"]] == [
        ("longhorn-system", "nightly")]
    assert _task(result, "Missing kind")["api_found"] is False


def test_k8s_info_wait_times_out_on_a_condition_that_never_comes(run_playbook, lab, tmp_path):
    playbook = _playbook(tmp_path, "wait.yml", """\
        - name: Wait for a condition nobody sets
          kubernetes.core.k8s_info:
            api_version: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            name: volumes.longhorn.io
            wait: true
            wait_timeout: 2
            wait_sleep: 1
            wait_condition: {type: Degraded, status: "True"}
        """)
    result = run_playbook(playbook)
    assert result.rc != 0, result
    assert "even after waiting for" in _task(result, "Wait for a condition nobody sets")["msg"]


def test_client_side_and_server_side_apply(run_playbook, lab, tmp_path):
    playbook = _playbook(tmp_path, "apply.yml", """\
        - name: Client-side apply
          kubernetes.core.k8s:
            apply: true
            definition:
              apiVersion: v1
              kind: ConfigMap
              metadata: {name: applied, namespace: default}
              data: {mode: "{{ mode | default('a') }}"}

        - name: Server-side apply
          kubernetes.core.k8s:
            apply: true
            server_side_apply:
              field_manager: longhorn-dr
              force_conflicts: "{{ force | default(false) }}"
            definition:
              apiVersion: longhorn.io/v1beta2
              kind: RecurringJob
              metadata: {name: ssa, namespace: longhorn-system}
              spec: {task: snapshot, cron: "{{ cron | default('0 3 * * *') }}", retain: 2, concurrency: 1}
        """)
    first = run_playbook(playbook)
    assert first.rc == 0, first
    assert _task(first, "Client-side apply")["changed"] is True and _task(first, "Server-side apply")["changed"] is True, first
    stored = lab.store.get("configmaps", "default", "applied")
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    # Longhorn's manager may own status fields (subresource status); the object's fields are the collection's.
    managers = {(e["manager"], e["operation"]) for e in lab.store.get("recurringjobs", "longhorn-system", "ssa")["metadata"]["managedFields"]
                if e.get("subresource") != "status"}
    assert managers == {("longhorn-dr", "Apply")}

    again = run_playbook(playbook)
    assert again.rc == 0 and again.changed() == 0, again

    changed = run_playbook(playbook, extra_vars={"mode": "b", "cron": "0 4 * * *"})
    assert changed.rc == 0, changed
    assert _task(changed, "Client-side apply")["changed"] is True and _task(changed, "Server-side apply")["changed"] is True
    assert lab.store.get("configmaps", "default", "applied")["data"] == {"mode": "b"}
    assert lab.store.get("recurringjobs", "longhorn-system", "ssa")["spec"]["cron"] == "0 4 * * *"

    # Someone else changes the cron with an ordinary update: applying our value again conflicts unless forced.
    lab.store.modify("recurringjobs", "longhorn-system", "ssa", lambda o: o)
    edit = _playbook(tmp_path, "edit.yml", """\
        - name: Edit the cron
          kubernetes.core.k8s:
            state: patched
            definition:
              apiVersion: longhorn.io/v1beta2
              kind: RecurringJob
              metadata: {name: ssa, namespace: longhorn-system}
              spec: {cron: "0 5 * * *"}
        """)
    assert run_playbook(edit).rc == 0
    conflict = run_playbook(playbook, extra_vars={"mode": "b", "cron": "0 4 * * *"})
    assert conflict.rc != 0, conflict
    assert "Apply failed with 1 conflict" in _task(conflict, "Server-side apply")["msg"], conflict
    forced = run_playbook(playbook, extra_vars={"mode": "b", "cron": "0 4 * * *", "force": True})
    assert forced.rc == 0, forced
    assert lab.store.get("recurringjobs", "longhorn-system", "ssa")["spec"]["cron"] == "0 4 * * *"


def test_k8s_scale_patches_the_scale_subresource(run_playbook, lab, tmp_path):
    assert run_playbook(_playbook(tmp_path, "resources.yml", RESOURCES_TASKS)).rc == 0
    playbook = _playbook(tmp_path, "scale.yml", """\
        - name: Scale
          kubernetes.core.k8s_scale:
            kubeconfig: "{{ lab_kubeconfig }}"
            api_version: apps/v1
            kind: Deployment
            name: web
            namespace: kc-test
            replicas: "{{ replicas }}"
            wait: true
            wait_timeout: 60
        """)
    mark = len(lab.audit_entries())
    result = run_playbook(playbook, extra_vars={"replicas": 2})
    assert result.rc == 0, result
    scaled = _task(result, "Scale")
    assert scaled["changed"] is True and scaled["result"]["status"]["readyReplicas"] == 2, scaled
    assert lab.store.get("deployments", NAMESPACE, "web")["spec"]["replicas"] == 2
    scale_writes = [e for e in lab.audit_entries()[mark:] if e["write"] and e["user_agent"].startswith("OpenAPI-Generator")]
    assert [(e["verb"], e["path"].rsplit("/", 1)[-1], e["code"]) for e in scale_writes] == [("patch", "scale", 200)]
    again = run_playbook(playbook, extra_vars={"replicas": 2})
    assert again.rc == 0 and again.changed() == 0, again
    down = run_playbook(playbook, extra_vars={"replicas": 0})
    assert down.rc == 0 and _task(down, "Scale")["changed"] is True, down
    assert [p for p in lab.store.list("pods", NAMESPACE)[0] if not p["metadata"].get("deletionTimestamp")] == []


def test_k8s_exec_in_a_running_pod(run_playbook, lab, tmp_path):
    playbook = _playbook(tmp_path, "exec.yml", """\
        - name: Tools pod
          kubernetes.core.k8s:
            wait: true
            wait_timeout: 60
            definition:
              apiVersion: v1
              kind: Pod
              metadata: {name: tools, namespace: default}
              spec:
                containers: [{name: shell, image: busybox, command: [sleep, infinity]}]

        - name: Run a command
          kubernetes.core.k8s_exec:
            kubeconfig: "{{ lab_kubeconfig }}"
            namespace: default
            pod: tools
            command: sh -c "echo out-text; echo err-text >&2; exit 3"
          register: ran
          failed_when: false
        """)
    result = run_playbook(playbook)
    assert result.rc == 0, result
    assert lab.store.get("pods", "default", "tools")["status"]["phase"] == "Running"
    ran = _task(result, "Run a command")
    assert "stdout" in ran, json.dumps(ran)
    assert ran["stdout"].strip() == "out-text" and ran["stderr"].strip() == "err-text", ran
    assert ran["rc"] == 3, ran
    execs = [e for e in lab.audit_entries() if e["path"].endswith("/pods/tools/exec")]
    assert [(e["verb"], e["code"]) for e in execs] == [("get", 101)], execs


def test_k8s_force_replace_of_a_custom_resource_needs_a_resource_version(run_playbook, lab, tmp_path):
    assert run_playbook(_playbook(tmp_path, "resources.yml", RESOURCES_TASKS)).rc == 0
    playbook = _playbook(tmp_path, "force.yml", """\
        - name: Replace without a resourceVersion
          kubernetes.core.k8s:
            force: true
            definition:
              apiVersion: longhorn.io/v1beta2
              kind: RecurringJob
              metadata: {name: nightly, namespace: longhorn-system}
              spec: {task: backup, cron: "0 1 * * *", retain: 7, concurrency: 1, groups: [default]}
        """)
    result = run_playbook(playbook)
    # Custom resources allow no unconditional update (PUT without metadata.resourceVersion); built-ins do.
    assert result.rc != 0, result
    # kube-apiserver up to 1.35 prints the value as 0x0, 1.36 as 0.
    assert re.search(r"metadata\.resourceVersion: Invalid value: (0x0|0): must be specified for an update",
                     _task(result, "Replace without a resourceVersion")["msg"]), result
    assert lab.store.get("recurringjobs", "longhorn-system", "nightly")["spec"]["cron"] == "0 2 * * *"
    configmap_only = _playbook(tmp_path, "force-cm.yml", """\
        - name: Replace a ConfigMap
          kubernetes.core.k8s:
            force: true
            definition:
              apiVersion: v1
              kind: ConfigMap
              metadata: {name: settings, namespace: kc-test}
              data: {retention: "9"}
        """)
    replaced = run_playbook(configmap_only)
    assert replaced.rc == 0 and _task(replaced, "Replace a ConfigMap")["method"] == "replace", replaced
    assert lab.store.get("configmaps", NAMESPACE, "settings")["data"] == {"retention": "9"}
