# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: the collection's restore path against a per-volume baseline playbook (issue 4, Speed).

Run from the repository root::

    .venv/bin/python bench/bench_restore_path.py            # N = 10, 50, 200 (about 30 minutes on 2 busy cores)
    .venv/bin/python bench/bench_restore_path.py --quick    # N = 10 only (about a minute)
    .venv/bin/python bench/bench_restore_path.py --sizes 200 --concurrency 20

For each N, on a lab whose restores are instant (``restore_speed_mbps=0``):

1. The bucket gets N volume backups, written with the lab's own backup writer
   (``BackupStore.begin_backup`` / ``write_image`` / ``finish``, what the emulated backup
   controller calls), each volume holding one small file, with the ``KubernetesStatus`` and
   access-mode labels a backup made through Longhorn carries. The claims are spread over five
   namespaces, which exist (as after ``make apps-deploy-all``'s namespaces, before the restore).
2. BackupTarget ``default`` is pointed at the bucket and the sync is awaited (BackupVolumes and
   Completed Backups for all N). None of this is timed.
3. ``collection``: ``bench/restore_baseline/collection.yml`` is run: ``longhorn_volume_restore``
   (all volumes) then ``longhorn_pv_from_volume`` (all, waits for Bound).
4. The cluster is wiped (the bucket survives), the target configured and synced again.
5. ``baseline``: ``bench/restore_baseline/playbook.yml`` is run: the same restore task with the
   same options, then an ``include_tasks`` loop that creates a PV and a PVC per volume with
   ``kubernetes.core.k8s`` and waits for Bound with ``kubernetes.core.k8s_info`` / ``until``.

Both runs therefore restore the volumes the same way, and the ratio of whole runs includes that
common part; the table also shows the claims step alone (the second task vs. the loop).
Wall time is that of the ``ansible-playbook`` process; task times come from the json callback.
API requests are the lab's audit log entries between two marks, watch requests excluded.
After each run every claim must be Bound to the PV of its volume and every volume's data must
equal what was backed up, or the bench fails.

Results are printed and written to bench/results/restore_path.json.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / ".collections"))

# pylint: disable=wrong-import-position
from tests.integration.conftest import ANSIBLE_PLAYBOOK, INVENTORY, lab_extra_vars, parse_callback_output, playbook_environment  # noqa: E402
from tests.lab.lab import Lab  # noqa: E402
from tests.lab.longhorn import volumedata  # noqa: E402
from tests.lab.longhorn.backupstore import BackupStore  # noqa: E402

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._volume_backup import kubernetes_status_label  # noqa: E402

NS = "longhorn-system"
MIB = 1024 * 1024
VOLUME_SIZE = 64 * MIB  # --volume-size-mib; the emulator's restore costs CPU per byte of volume size even when "instant"
NAMESPACES = tuple("bench-app-%d" % index for index in range(5))
PLAYBOOKS = REPO_ROOT / "bench" / "restore_baseline"
RESULTS = REPO_ROOT / "bench" / "results"
SECRET = "bench-s3-credentials"
READ_VERBS = ("get", "list")
TARGETS = {"ratio": 10.0, "requests_per_volume": 5.0}
RESTORE_TASK = "Restore the volumes"
CLAIMS_STEP = "claims step (after the restore task)"


def volume_name(index):
    """``pvc-<uuid>`` as the CSI provisioner names a volume."""
    return "pvc-" + str(uuid.UUID(int=0xbe7c0000 + index))


def claim_of(index):
    return NAMESPACES[index % len(NAMESPACES)], "data-%04d" % index


def payload(index):
    return ("volume %d payload\n" % index) * 200


# ---- setup (not timed) --------------------------------------------------------------------------
def write_backup(store, work_dir, index, volume_size):
    """One volume's backup through the emulator's writer; returns (volume, digest of its data)."""
    name = volume_name(index)
    namespace, claim = claim_of(index)
    source = os.path.join(work_dir, name)
    os.makedirs(source)
    with open(os.path.join(source, "data.txt"), "w", encoding="utf-8") as handle:
        handle.write(payload(index))
    image = volumedata.image_from_dir(source, volume_size)
    volume = {"status": {"kubernetesStatus": {"pvName": name, "pvStatus": "Bound", "namespace": namespace, "pvcName": claim,
                                              "workloadsStatus": None}}}
    labels = {"KubernetesStatus": kubernetes_status_label(volume), "longhorn.io/volume-access-mode": "rwo"}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    backup = "backup-" + uuid.uuid4().hex[:16]
    writer = store.begin_backup(name, backup, volume_size=volume_size, labels=labels, created_at=now, storage_class_name="longhorn")
    writer.write_image(image)
    writer.finish(snapshot_name="snap-" + uuid.uuid4().hex[:12], snapshot_created_at=now, created_at=now, volume_size=volume_size,
                  labels=labels)
    return name, volumedata.dir_digest(source)


def populate(lab, count, volume_size, workers=4):
    store = BackupStore(lab.s3.client(), lab.bucket)
    # botocore builds a client's exception classes on first use; racing threads can build two sets, and then
    # ``except client.exceptions.NoSuchKey`` misses the one raised. Build them before the threads start.
    store.s3.exceptions.from_code("NoSuchKey")
    with tempfile.TemporaryDirectory(prefix="bench-restore-src-") as work_dir:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(pool.map(lambda index: write_backup(store, work_dir, index, volume_size), range(count)))


def wait_for(predicate, what, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit("timed out after %ss waiting for %s" % (timeout, what))


def configure_and_sync(lab, count):
    """Namespaces, credential Secret, BackupTarget default on the bucket; wait for the sync of all backups."""
    store = lab.store
    for namespace in NAMESPACES:
        if store.try_get("namespaces", "", namespace) is None:
            store.create("namespaces", {"metadata": {"name": namespace}})
    data = {"AWS_ACCESS_KEY_ID": lab.access_key, "AWS_SECRET_ACCESS_KEY": lab.secret_key, "AWS_ENDPOINTS": lab.s3_endpoint}
    store.create("secrets", {"metadata": {"name": SECRET, "namespace": NS}, "type": "Opaque",
                             "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}})

    def _target(obj):
        obj["spec"].update(backupTargetURL=lab.backup_target_url, credentialSecret=SECRET, pollInterval="5m0s")
    store.modify("backuptargets", NS, "default", _target)

    def _synced():
        backup_volumes, _version = store.list("backupvolumes", NS)
        backups, _version = store.list("backups", NS)
        done = [b for b in backups if (b.get("status") or {}).get("state") == "Completed" and (b.get("status") or {}).get("url")]
        return len(backup_volumes) == count and len(done) == count
    wait_for(_synced, "the sync of %d backups" % count)


# ---- measuring ---------------------------------------------------------------------------------
def run_playbook(lab, playbook, tmp_dir, extra_vars):
    """Run one playbook against the lab; returns (wall seconds, callback document)."""
    vars_file = tmp_dir / ("extra-vars-%s.json" % playbook.stem)
    vars_file.touch(mode=0o600)
    vars_file.write_text(json.dumps({**lab_extra_vars(lab), **extra_vars}), encoding="utf-8")
    ansible_tmp = tmp_dir / ("ansible-" + playbook.stem)
    ansible_tmp.mkdir()
    command = [str(ANSIBLE_PLAYBOOK), "-i", str(INVENTORY), "-e", "@%s" % vars_file, str(playbook)]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO_ROOT, env=playbook_environment(ansible_tmp), capture_output=True, text=True,
                               timeout=7200, check=False)
    wall = time.perf_counter() - started
    output = parse_callback_output(completed.stdout)
    if completed.returncode != 0:
        raise SystemExit("%s failed (rc=%d)\n%s\n%s" % (playbook.name, completed.returncode, completed.stdout[-5000:], completed.stderr[-3000:]))
    return wall, output


def _seconds(text):
    return datetime.datetime.fromisoformat(text.rstrip("Z")).timestamp()


def task_times(output):
    """(name, start, end) of every task run (include loops give one entry per included task), from the json callback."""
    times = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            duration = task["task"].get("duration") or {}
            if duration.get("start") and duration.get("end"):
                times.append((task["task"]["name"], _seconds(duration["start"]), _seconds(duration["end"])))
    return times


def task_seconds(output):
    """Seconds per task name (summed over include loops), and the claims step: from the restore task's end to the last task's end."""
    spent = collections.OrderedDict()
    times = task_times(output)
    for name, start, end in times:
        spent[name] = round(spent.get(name, 0.0) + end - start, 3)
    restored = [end for name, _start, end in times if name == RESTORE_TASK]
    spent[CLAIMS_STEP] = round(max(end for _name, _start, end in times) - restored[0], 3) if restored and times else 0.0
    return spent


def requests_between(lab, start, end):
    """Audit entries [start:end) without watch requests, counted by verb."""
    entries = [entry for entry in lab.audit_entries()[start:end] if entry.get("verb") != "watch"]
    watches = sum(1 for entry in lab.audit_entries()[start:end] if entry.get("verb") == "watch")
    return collections.Counter(entry.get("verb") for entry in entries), watches


def verify(lab, expected):
    """Every claim Bound to its volume's PV, and every volume's data as it was backed up."""
    for name, digest in sorted(expected.items()):
        volume = lab.store.get("volumes", NS, name)
        kstatus = (volume.get("status") or {}).get("kubernetesStatus") or {}
        pvc = lab.store.get("persistentvolumeclaims", kstatus["namespace"], kstatus["pvcName"])
        if (pvc.get("status") or {}).get("phase") != "Bound":
            raise SystemExit("claim %s/%s is not Bound" % (kstatus["namespace"], kstatus["pvcName"]))
        pv = lab.store.get("persistentvolumes", "", pvc["spec"]["volumeName"])
        if pv["spec"]["csi"]["volumeHandle"] != name:
            raise SystemExit("claim %s/%s is bound to PV %s of volume %s, not %s"
                             % (kstatus["namespace"], kstatus["pvcName"], pv["metadata"]["name"], pv["spec"]["csi"]["volumeHandle"], name))
        if volumedata.dir_digest(lab.ctx.volume_data_dir(name)) != digest:
            raise SystemExit("volume %s does not hold the data that was backed up" % name)


def measure(lab, playbook, tmp_dir, expected, extra_vars):
    start = lab.audit_mark()
    wall, output = run_playbook(lab, playbook, tmp_dir, extra_vars)
    end = lab.audit_mark()
    verify(lab, expected)
    verbs, watches = requests_between(lab, start, end)
    return {"wall": wall, "tasks": task_seconds(output), "verbs": dict(verbs), "watches": watches,
            "requests": sum(verbs.values()), "reads": sum(n for verb, n in verbs.items() if verb in READ_VERBS),
            "writes": sum(n for verb, n in verbs.items() if verb not in READ_VERBS)}


def bench_size(count, concurrency, wait_sleep, keep, baseline_too=True, volume_size=VOLUME_SIZE):
    state_dir = tempfile.mkdtemp(prefix="bench-restore-%d-" % count)
    tmp_dir = pathlib.Path(state_dir) / "runs"
    tmp_dir.mkdir()
    extra = {"bench_restore_concurrency": concurrency, "bench_wait_sleep": wait_sleep}
    with Lab(state_dir=os.path.join(state_dir, "lab"), restore_speed_mbps=0, backup_speed_mbps=0) as lab:
        started = time.perf_counter()
        expected = populate(lab, count, volume_size)
        configure_and_sync(lab, count)
        setup = time.perf_counter() - started
        collection = measure(lab, PLAYBOOKS / "collection.yml", tmp_dir, expected, extra)
        baseline = None
        if baseline_too:
            lab.wipe_cluster()
            configure_and_sync(lab, count)
            baseline = measure(lab, PLAYBOOKS / "playbook.yml", tmp_dir, expected, extra)
    if not keep:
        shutil.rmtree(state_dir, ignore_errors=True)
    return {"n": count, "setup_seconds": round(setup, 1), "collection": collection, "baseline": baseline}


def claims_seconds(run):
    """The PV/PVC step alone: from the end of the restore task to the end of the last task."""
    return run["tasks"].get(CLAIMS_STEP, 0.0)


def summarize(result):
    n = result["n"]
    ours, base = result["collection"], result["baseline"]
    if base is None:
        # --collection-only: no baseline run, so no ratios.
        base = {"wall": float("nan"), "tasks": {}, "requests": float("nan"), "reads": -1, "writes": -1}
    return {
        "n": n,
        "collection_wall": round(ours["wall"], 1), "baseline_wall": round(base["wall"], 1),
        "ratio_wall": round(base["wall"] / ours["wall"], 2),
        "collection_restore_task": round(ours["tasks"].get(RESTORE_TASK, 0.0), 1),
        "baseline_restore_task": round(base["tasks"].get(RESTORE_TASK, 0.0), 1),
        "collection_claims": round(claims_seconds(ours), 1), "baseline_claims": round(claims_seconds(base), 1),
        "ratio_claims": round(claims_seconds(base) / max(claims_seconds(ours), 1e-3), 2) if base["tasks"] else float("nan"),
        "collection_req_per_volume": round(ours["requests"] / n, 2), "baseline_req_per_volume": round(base["requests"] / n, 2),
        "collection_reads_writes": "%d/%d" % (ours["reads"], ours["writes"]),
        "baseline_reads_writes": "%d/%d" % (base["reads"], base["writes"]),
    }


def print_table(rows, load):
    print("\nRestore path on the lab, instant restores; load average at the start %s" % load)
    header = ("N", "coll wall s", "base wall s", "wall ratio", "restore task s (coll/base)", "claims s (coll/base)", "claims ratio",
              "req/vol coll", "req/vol base", "reads/writes coll", "reads/writes base")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(value) for value in (
            row["n"], row["collection_wall"], row["baseline_wall"], "%.1fx" % row["ratio_wall"],
            "%s / %s" % (row["collection_restore_task"], row["baseline_restore_task"]),
            "%s / %s" % (row["collection_claims"], row["baseline_claims"]), "%.1fx" % row["ratio_claims"],
            row["collection_req_per_volume"], row["baseline_req_per_volume"], row["collection_reads_writes"], row["baseline_reads_writes"])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,50,200", help="comma-separated volume counts (default 10,50,200)")
    parser.add_argument("--quick", action="store_true", help="N = 10 only")
    parser.add_argument("--concurrency", type=int, default=20, help="longhorn_volume_restore concurrency (default 20)")
    parser.add_argument("--wait-sleep", type=int, default=1, help="seconds between polls, both playbooks (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the lab state directories")
    parser.add_argument("--volume-size-mib", type=int, default=VOLUME_SIZE // MIB, help="size of each volume (default 64)")
    parser.add_argument("--collection-only", action="store_true", help="skip the baseline (e.g. to try other --concurrency values)")
    args = parser.parse_args(argv)
    sizes = [10] if args.quick else [int(value) for value in args.sizes.split(",") if value.strip()]
    load = "%.1f %.1f %.1f" % os.getloadavg()
    results = []
    for count in sizes:
        print("N=%d ..." % count, flush=True)
        result = bench_size(count, args.concurrency, args.wait_sleep, args.keep, baseline_too=not args.collection_only,
                            volume_size=args.volume_size_mib * MIB)
        results.append(result)
        row = summarize(result)
        print("  collection %.1fs (%s), %d requests (%s, %d watches excluded)" % (
            result["collection"]["wall"], ", ".join("%s %.1fs" % item for item in result["collection"]["tasks"].items()),
            result["collection"]["requests"], result["collection"]["verbs"], result["collection"]["watches"]), flush=True)
        if result["baseline"] is not None:
            print("  baseline   %.1fs (restore %.1fs, claims %.1fs), %d requests (%s, %d watches excluded)" % (
                result["baseline"]["wall"], row["baseline_restore_task"], row["baseline_claims"], result["baseline"]["requests"],
                result["baseline"]["verbs"], result["baseline"]["watches"]), flush=True)
    rows = [summarize(result) for result in results]
    print("volumes of %d MiB, restore concurrency %d, polls every %ds" % (args.volume_size_mib, args.concurrency, args.wait_sleep))
    print_table(rows, load)
    print("load average at the end %.1f %.1f %.1f" % os.getloadavg())
    largest = rows[-1]
    ratio = "no baseline run" if args.collection_only else "%.1fx (target >= %.0fx): %s" % (
        largest["ratio_wall"], TARGETS["ratio"], "met" if largest["ratio_wall"] >= TARGETS["ratio"] else "NOT met")
    print("\nTargets at N=%d: wall ratio %s; requests per volume %.2f (target <= %.0f): %s" % (
        largest["n"], ratio, largest["collection_req_per_volume"], TARGETS["requests_per_volume"],
        "met" if largest["collection_req_per_volume"] <= TARGETS["requests_per_volume"] else "NOT met"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("restore_path-collection-only.json" if args.collection_only else "restore_path.json")
    out.write_text(json.dumps({"load_average_start": load, "concurrency": args.concurrency, "wait_sleep": args.wait_sleep,
                               "volume_size_mib": args.volume_size_mib,
                               "rows": rows, "runs": results}, indent=2, sort_keys=True), encoding="utf-8")
    print("written to %s" % out.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
