# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Replay kubernetes.core's own integration targets against the lab's real control plane.

A peer check of the lab: kubernetes.core's maintainers wrote these targets against real
clusters (kind in their CI), so every one that fails here is either something the lab's
control plane lacks or something the environment cannot give (no node agent yet, no network).

Each target gets a control plane of its own (``tests/lab/control_plane/cluster.py``: kine,
kube-apiserver, kube-controller-manager, kube-scheduler on loopback), a fresh HOME and a fresh
TMPDIR (kubernetes.core caches API discovery in ``$TMPDIR/k8srcp-*.json``), and is run the way
its ``runme.sh`` runs it under ansible-test: ``ansible-playbook playbook.yaml`` in the target's
directory, ``ANSIBLE_ROLES_PATH`` the targets directory, ``localhost`` with a local connection and
the venv's python.  As in kubernetes.core's CI the cluster is reached through the default
``~/.kube/config`` (HOME is the per-target one), not ``K8S_AUTH_KUBECONFIG``: k8s_full and k8s_info
delete or replace ``~/.kube/config`` and assert the module then fails, which an exported
K8S_AUTH_KUBECONFIG (or KUBECONFIG) would defeat.  ``--kubeconfig-env`` exports it anyway.

Results come from tests/peer/callback_plugins/peer_record.py (one JSON line per task result,
so a target stopped by its timeout still counts what it reached).  Exit status: non-zero when a
target outside EXPECTED_FAILURES fails, when one inside it passes (remove it from the list), or
when a --min-pass-rate is not met.

    python tests/peer/run_kubernetes_core_targets.py [--targets k8s_info,k8s_apply] [--json out.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tests.lab.control_plane import build  # noqa: E402  pylint: disable=wrong-import-position
from tests.peer.kubectl_harness import lab_control_plane  # noqa: E402  pylint: disable=wrong-import-position
from tests.peer import fetch_kubernetes_core_targets as fetch  # noqa: E402  pylint: disable=wrong-import-position

# The targets attempted by default, in kubernetes.core's own order of concerns.
DEFAULT_TARGETS = (
    "k8s_info", "k8s_apply", "k8s_patched", "k8s_json_patch", "k8s_json_patch_hide_fields", "k8s_diff", "k8s_crd",
    "k8s_waiter", "k8s_access_review", "k8s_user_impersonation", "k8s_taint", "k8s_drain", "k8s_exec", "k8s_log",
    "k8s_copy", "k8s_check_mode", "k8s_delete", "k8s_full", "k8s_gc", "k8s_generate_name", "k8s_hide_fields",
    "k8s_label_selectors", "k8s_lists", "k8s_merge_type", "k8s_rollback", "k8s_scale", "k8s_template", "k8s_validate",
    "k8s_append_hash", "k8s_cluster_info", "lookup_k8s", "remove_namespace",
)

# Targets of kubernetes.core never attempted here, and why.
EXCLUDED = {
    "helm*": "need the helm binary and chart repositories on the network",
    "install_helm": "downloads helm from get.helm.sh",
    "lookup_kustomize": "needs the kustomize binary",
    "k8s_manifest_url": "applies manifests fetched from raw.githubusercontent.com (network)",
    "setup_namespace": "helper role (aliases: disabled), run as a dependency of the targets",
    "setup_kubeconfig": "helper role (aliases: disabled), run as a dependency of the targets",
}

# Targets expected to fail here, each with its reason.  A reason starting with NEEDS_NODE marks a
# target that meets what the lab's node does not emulate (the node agent runs no containers).
NEEDS_NODE = "the lab's node runs no containers"
EXPECTED_FAILURES = {
    "k8s_waiter": NEEDS_NODE + ": a pod whose command exits (/bin/false) or whose image does not exist still goes Running",
    "k8s_log": NEEDS_NODE + ": a pod's logs are empty, the target expects its command's output",
    "k8s_copy": NEEDS_NODE + ": k8s_cp needs tar and files inside a container image",
    "k8s_info": "stopped by the per-target timeout in 'Wait for multiple non-existent pods to be created' (600 s on a loaded "
                "2-CPU machine); cause not found yet",
    # Not the lab's doing.
    "k8s_user_impersonation": "upstream v1.36 wording: ConstrainedImpersonation (beta, on by default since 1.36) refuses with "
                              "'cannot impersonate-on:serviceaccount:get resource', the target asserts the older 'cannot impersonate resource'",
    # The lab's control plane.
    "lookup_k8s": "lab config gap: the admin kubeconfig authenticates with a bearer token; setup_kubeconfig (kind-style) reads "
                  "client-certificate/client-key files from it (stat(None)); needs an admin client certificate in the kubeconfig",
}
# What `make test` runs (the rest: make peer PEER_TARGETS=all): quick targets, node-bound ones among them.
CI_TARGETS = ("k8s_access_review", "k8s_patched", "k8s_diff", "k8s_crd", "k8s_exec", "k8s_json_patch", "k8s_taint", "k8s_drain")


def expected_failure(target):
    return EXPECTED_FAILURES.get(target)


def needs_node(target):
    return (EXPECTED_FAILURES.get(target) or "").startswith(NEEDS_NODE)


def read_aliases(targets_dir, target):
    try:
        with open(os.path.join(targets_dir, target, "aliases"), encoding="utf-8") as handle:
            return [line.split("#", 1)[0].strip() for line in handle if line.split("#", 1)[0].strip()]
    except OSError:
        return []


def alias_notes(aliases):
    """The aliases that change how ansible-test would treat a target (not its groups or time)."""
    return [alias for alias in aliases
            if alias in ("disabled", "unsupported", "unstable", "destructive", "slow")
            or alias.startswith(("needs/", "cloud/", "skip/", "context/"))]


def prepare_collections(work, collections_path, extracted_targets):
    """A collections tree in which kubernetes.core holds its tests, as ansible-test lays it out.

    The targets call the modules by short name (``k8s:``, ``k8s_info:``): ansible resolves them
    because the playbook lies inside ``ansible_collections/kubernetes/core`` *and* that is the
    kubernetes.core on the collections path.  So: a real ``kubernetes/core`` directory whose
    entries link to the vendored copy (the modules under test), plus a copy of the extracted
    ``tests/``; every other vendored collection linked as it is, and the test dependencies
    (community.general) from the sdist where the vendored path lacks them.
    """
    root = os.path.join(work, "collections")
    shutil.rmtree(root, ignore_errors=True)
    source = os.path.join(collections_path, "ansible_collections")
    for namespace in sorted(os.listdir(source)):
        for name in sorted(os.listdir(os.path.join(source, namespace))):
            os.makedirs(os.path.join(root, "ansible_collections", namespace), exist_ok=True)
            vendored = os.path.join(source, namespace, name)
            if (namespace, name) != fetch.COLLECTION:
                os.symlink(vendored, os.path.join(root, "ansible_collections", namespace, name))
                continue
            core = os.path.join(root, "ansible_collections", namespace, name)
            os.makedirs(core)
            for entry in sorted(os.listdir(vendored)):
                if entry != "tests":
                    os.symlink(os.path.join(vendored, entry), os.path.join(core, entry))
            shutil.copytree(os.path.dirname(extracted_targets), os.path.join(core, "tests", "integration"), symlinks=True)
    for (namespace, name), extracted in sorted(fetch.dependency_dirs().items()):
        link = os.path.join(root, "ansible_collections", namespace, name)
        if not os.path.exists(link) and os.path.isdir(extracted):  # a vendored copy wins
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(extracted, link)
    return root, os.path.join(root, "ansible_collections", *fetch.COLLECTION, "tests", "integration", "targets")


# ---- one target ----------------------------------------------------------------------
def _write_ansible_cfg(path, collections_path, targets_dir):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join([
            "[defaults]",
            "collections_path = %s" % collections_path,
            "roles_path = %s" % targets_dir,
            "callback_plugins = %s" % os.path.join(HERE, "callback_plugins"),
            "callbacks_enabled = peer_record",
            "stdout_callback = ansible.builtin.default",
            "retry_files_enabled = false",
            "interpreter_python = %s" % sys.executable,
            "nocows = true",
            "[galaxy]",
            "server_list =",
            "",
        ]))


def _clean_env():
    """The caller's environment without what would point the target elsewhere."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ANSIBLE_", "K8S_AUTH_", "PEER_")) and key not in ("KUBECONFIG", "PYTHONPATH")}
    return env


def parse_record(path):
    counts = dict.fromkeys(("ok", "changed", "failed", "ignored", "skipped", "unreachable"), 0)
    first_failure = None
    last_started = None
    stats = None
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        event = record.get("event")
        if event == "start":
            last_started = record
        elif event == "stats":
            stats = record.get("stats")
        elif event == "ok":
            counts["ok"] += 1
            counts["changed"] += record.get("changed", False)
        elif event == "skipped":
            counts["skipped"] += 1
        elif event in ("failed", "unreachable"):
            if record.get("ignored"):
                counts["ignored"] += 1
            else:
                counts["failed" if event == "failed" else "unreachable"] += 1
                if first_failure is None:
                    first_failure = record
    return counts, first_failure, last_started, stats


def run_target(target, targets_dir, collections_path, work, timeout, kubeconfig_env=False, log=print):
    """Start a control plane, run the target's playbook, stop; a dict of what happened."""
    base = os.path.join(work, target)
    shutil.rmtree(base, ignore_errors=True)
    home, tmp = os.path.join(base, "home"), os.path.join(base, "tmp")
    for path in (home, tmp, os.path.join(home, ".kube")):
        os.makedirs(path, exist_ok=True)
    record_file = os.path.join(base, "record.jsonl")
    log_file = os.path.join(base, "ansible.log")
    result = {"target": target, "dir": base, "log": log_file, "aliases": read_aliases(targets_dir, target),
              "expected_failure": expected_failure(target), "needs_node": needs_node(target)}
    started = time.monotonic()
    control_plane = lab_control_plane(os.path.join(base, "control-plane"))
    try:
        control_plane.start()
    except Exception as exc:  # pylint: disable=broad-except
        result.update(status="error", seconds=round(time.monotonic() - started, 1), returncode=None,
                      counts=dict.fromkeys(("ok", "changed", "failed", "ignored", "skipped", "unreachable"), 0),
                      first_failure={"task": "(control plane start)", "msg": str(exc)[:2000]})
        return result
    try:
        shutil.copyfile(control_plane.kubeconfig, os.path.join(home, ".kube", "config"))
        os.chmod(os.path.join(home, ".kube", "config"), 0o600)
        cfg = os.path.join(base, "ansible.cfg")
        _write_ansible_cfg(cfg, collections_path, targets_dir)
        inventory = os.path.join(base, "inventory")
        with open(inventory, "w", encoding="utf-8") as handle:
            handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        env = _clean_env()
        venv_bin = os.path.dirname(sys.executable)
        env.update({
            "HOME": home, "TMPDIR": tmp,
            "PATH": os.pathsep.join([venv_bin, os.path.dirname(build.binary("kubectl")), env.get("PATH", "")]),
            "ANSIBLE_CONFIG": cfg, "ANSIBLE_ROLES_PATH": targets_dir, "ANSIBLE_COLLECTIONS_PATH": collections_path,
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PEER_RECORD_FILE": record_file,
        })
        if kubeconfig_env:
            env["K8S_AUTH_KUBECONFIG"] = control_plane.kubeconfig
        argv = [os.path.join(venv_bin, "ansible-playbook"), "-i", inventory, "playbook.yaml"]
        with open(log_file, "wb") as out:
            process = subprocess.Popen(argv, cwd=os.path.join(targets_dir, target), env=env, stdout=out,  # pylint: disable=consider-using-with
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            timed_out = False
            try:
                returncode = process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                returncode = None
    finally:
        control_plane.stop()
    counts, first_failure, last_started, _stats = parse_record(record_file)
    if timed_out:
        status = "timeout"
        if first_failure is None:
            first_failure = {"task": (last_started or {}).get("task", "?"), "path": (last_started or {}).get("path"),
                             "msg": "still running after %ds (per-target timeout)" % timeout}
    elif returncode == 0 and counts["failed"] == 0 and counts["unreachable"] == 0:
        status = "passed"
    else:
        status = "failed"
        if first_failure is None:
            first_failure = {"task": "(ansible-playbook)", "msg": "exit %s; see %s" % (returncode, log_file)}
            try:
                with open(log_file, encoding="utf-8", errors="replace") as handle:
                    first_failure["msg"] = " ".join(handle.read().split())[-600:]
            except OSError:
                pass
    result.update(status=status, returncode=returncode, seconds=round(time.monotonic() - started, 1), counts=counts,
                  first_failure=first_failure)
    return result


# ---- the run ---------------------------------------------------------------------------
def outcome(result):
    """passed / failed (unexpected) / xfail (expected) / XPASS (expected to fail, passed)."""
    expected = result.get("expected_failure")
    if result["status"] == "passed":
        return "XPASS" if expected else "passed"
    if result["status"] == "skipped":
        return "skipped"
    return "xfail" if expected else "FAILED"


def totals(results):
    ran = [r for r in results if r["status"] != "skipped"]
    summary = {"targets_run": len(ran), "targets_clean": sum(r["status"] == "passed" for r in ran)}
    summary["tasks_run"] = sum(r["counts"]["ok"] + r["counts"]["failed"] + r["counts"]["ignored"] + r["counts"]["unreachable"] for r in ran)
    summary["tasks_passed"] = sum(r["counts"]["ok"] + r["counts"]["ignored"] for r in ran)
    summary["task_pass_rate"] = round(summary["tasks_passed"] / summary["tasks_run"], 4) if summary["tasks_run"] else 0.0
    return summary


def print_table(results, out=sys.stdout):
    header = "%-28s %-8s %5s %5s %5s %5s %5s %7s  %s" % ("target", "result", "ok", "chg", "fail", "ign", "skip", "secs", "first failure / note")
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in results:
        c = r["counts"]
        note = ""
        if r["status"] == "skipped":
            note = r.get("reason", "")
        elif r.get("first_failure") and r["status"] != "passed":
            failure = r["first_failure"]
            note = "%s: %s" % (failure.get("task"), " ".join(str(failure.get("msg", "")).split())[:160])
        if r.get("expected_failure") and r["status"] != "skipped":
            note = "[expected: %s] %s" % (r["expected_failure"], note)
        row = (r["target"], outcome(r), c["ok"], c["changed"], c["failed"], c["ignored"], c["skipped"], r.get("seconds", 0.0), note)
        print("%-28s %-8s %5d %5d %5d %5d %5d %7.1f  %s" % row, file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Expected failures:\n" + "\n".join("  %s: %s" % item for item in sorted(EXPECTED_FAILURES.items()))
                                     + "\nExcluded:\n" + "\n".join("  %s: %s" % item for item in sorted(EXCLUDED.items())))
    parser.add_argument("--targets", help="comma-separated targets, or 'ci' for CI_TARGETS (default: %d targets, see DEFAULT_TARGETS)"
                        % len(DEFAULT_TARGETS))
    parser.add_argument("--skip", default="", help="comma-separated targets to leave out")
    parser.add_argument("--only-node-free", action="store_true", help="leave out the targets that need a node")
    parser.add_argument("--json", metavar="FILE", help="write per-target results and totals to FILE")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a target that needs a node (it hangs on its first wait) is stopped (default 300)")
    parser.add_argument("--timeout-other", type=float, default=900.0,
                        help="seconds before any other target is stopped (default 900: k8s_full runs ~100 modules, 3-8 s each on a loaded machine)")
    parser.add_argument("--jobs", type=int, default=2, help="targets run at once, each on its own control plane (default 2)")
    parser.add_argument("--min-pass-rate", type=float, default=None,
                        help="fail when tasks passed / tasks run is below this (a fraction, 0.8, or a percentage, 80)")
    parser.add_argument("--include-disabled", action="store_true", help="also run targets whose aliases say 'disabled'")
    parser.add_argument("--kubeconfig-env", action="store_true", help="also export K8S_AUTH_KUBECONFIG (breaks k8s_full's no-kubeconfig check)")
    parser.add_argument("--work-dir", help="where per-target state and logs go (default: a new temporary directory, kept)")
    parser.add_argument("--collections-path", default=os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.path.join(REPO_ROOT, ".collections"),
                        help="collections path holding kubernetes.core 6.2.0 and ansible.posix (default: $ANSIBLE_COLLECTIONS_PATH or ./.collections)")
    parser.add_argument("--find-links", metavar="DIR", help="passed to the sdist fetch (pip download --find-links)")
    args = parser.parse_args(argv)

    collections_path = os.path.abspath(args.collections_path.split(os.pathsep)[0])
    if not os.path.isdir(os.path.join(collections_path, "ansible_collections", "kubernetes", "core")):
        parser.error("no kubernetes.core under %s (run `make` to vendor it, or pass --collections-path)" % collections_path)
    try:
        targets_dir = fetch.ensure(find_links=args.find_links)
    except fetch.FetchError as exc:
        print("peer sources: %s" % exc, file=sys.stderr)
        return 2
    try:
        for name in ("kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
            build.binary(name)
    except build.BuildError as exc:
        print(str(exc), file=sys.stderr)
        return 2

    if args.targets == "ci":
        targets = list(CI_TARGETS)
    else:
        targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else list(DEFAULT_TARGETS)
    skip = {t.strip() for t in args.skip.split(",") if t.strip()}
    work = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(prefix="peer-k8s-core-")
    os.makedirs(work, exist_ok=True)
    collections_path, targets_dir = prepare_collections(work, collections_path, targets_dir)
    print("kubernetes.core targets: %s\nwork dir (state, logs): %s\ncollections: %s" % (targets_dir, work, collections_path), flush=True)

    results, runnable = [], []
    for target in targets:
        aliases = read_aliases(targets_dir, target)
        skipped = None
        if not os.path.isfile(os.path.join(targets_dir, target, "playbook.yaml")) and not os.path.isdir(os.path.join(targets_dir, target, "tasks")):
            skipped = "no such target in kubernetes.core"
        elif target in skip:
            skipped = "--skip"
        elif args.only_node_free and needs_node(target):
            skipped = "--only-node-free"
        elif "disabled" in aliases and not args.include_disabled:
            skipped = "aliases: disabled (a helper role other targets depend on; --include-disabled runs it)"
        if skipped:
            results.append({"target": target, "status": "skipped", "reason": skipped, "aliases": aliases,
                            "counts": dict.fromkeys(("ok", "changed", "failed", "ignored", "skipped", "unreachable"), 0),
                            "expected_failure": None, "needs_node": needs_node(target)})
        else:
            runnable.append(target)
    for target in targets:
        notes = alias_notes(read_aliases(targets_dir, target))
        if notes:
            print("aliases of %s: %s" % (target, ", ".join(notes)))

    lock = threading.Lock()
    started = time.monotonic()

    def one(target):
        # A node-bound target hangs on its first wait, so it is stopped early; the others get time to finish.
        timeout = args.timeout if needs_node(target) else args.timeout_other
        result = run_target(target, targets_dir, collections_path, work, timeout, kubeconfig_env=args.kubeconfig_env)
        with lock:
            c = result["counts"]
            print("[%5.0fs] %-28s %-8s ok=%d changed=%d failed=%d ignored=%d (%.0fs)" % (
                time.monotonic() - started, target, outcome(result), c["ok"], c["changed"], c["failed"], c["ignored"], result["seconds"]),
                flush=True)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(one, runnable))
    by_name = {r["target"]: r for r in done + results}
    ordered = [by_name[t] for t in targets if t in by_name]
    elapsed = time.monotonic() - started

    print()
    print_table(ordered)
    all_totals = totals(ordered)
    node_free = totals([r for r in ordered if not r["needs_node"]])
    print()
    print("all targets:        tasks passed %d / %d (%.1f%%), targets clean %d / %d" % (
        all_totals["tasks_passed"], all_totals["tasks_run"], 100 * all_totals["task_pass_rate"],
        all_totals["targets_clean"], all_totals["targets_run"]))
    print("outside what the node does not emulate: tasks passed %d / %d (%.1f%%), targets clean %d / %d" % (
        node_free["tasks_passed"], node_free["tasks_run"], 100 * node_free["task_pass_rate"],
        node_free["targets_clean"], node_free["targets_run"]))
    print("excluded: " + "; ".join("%s (%s)" % item for item in sorted(EXCLUDED.items())))
    print("run took %.0fs; logs under %s" % (elapsed, work))

    unexpected = [r["target"] for r in ordered if outcome(r) == "FAILED"]
    xpass = [r["target"] for r in ordered if outcome(r) == "XPASS"]
    status = 0
    if unexpected:
        print("FAILED (not in EXPECTED_FAILURES): %s" % ", ".join(unexpected))
        status = 1
    if xpass:
        print("XPASS (in EXPECTED_FAILURES but passed, remove them from the list): %s" % ", ".join(xpass))
        status = 1
    if args.min_pass_rate is not None:
        floor = args.min_pass_rate / 100.0 if args.min_pass_rate > 1 else args.min_pass_rate
        if all_totals["task_pass_rate"] < floor:
            print("task pass rate %.1f%% is below --min-pass-rate %.1f%%" % (100 * all_totals["task_pass_rate"], 100 * floor))
            status = 1
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"targets": ordered, "totals": all_totals, "totals_not_needing_node": node_free, "seconds": round(elapsed, 1),
                       "excluded": EXCLUDED, "expected_failures": EXPECTED_FAILURES, "work_dir": work, "exit_status": status},
                      handle, indent=2, default=str)
    return status


if __name__ == "__main__":
    sys.exit(main())
