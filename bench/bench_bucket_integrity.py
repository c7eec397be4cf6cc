# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: minio_bucket_check ``integrity: full`` throughput against raw GETs of the same blocks.

Run from the repository root::

    .venv/bin/python bench/bench_bucket_integrity.py [--volumes 12] [--blocks 12]

It starts the lab's S3 server and backs up volumes through the lab's
BackupStore writer (real 2 MiB blocks, lz4 and gzip compressed as Longhorn
does, two backups per volume), plus one system backup. Then, in the same run:

* raw: concurrent GETs of every distinct block object (bodies read and
  dropped) at the inventory's concurrency;
* full: ``BucketInspector.run(integrity="full")`` end to end (LIST, cfg reads,
  download + decompress + truncated SHA-512 of every block, the zip's SHA-256).

Target (issue 3, Speed): full throughput >= 70% of raw throughput, both in
block bytes per second. Each measurement is repeated (``--repeat``), raw and
full alternating, and the median is used; the ratio of each raw/full pair is
printed too (min, median, max), because other work on the machine moves
single runs a lot. Results are printed and written to
bench/results/bucket_integrity.json.

The client and server CPU seconds of each run are printed too: with the lab's
server on the same machine, verification (decompressing and hashing 2 MiB)
competes with the server for the same cores. From them the script derives two
ceilings of the ratio that no change to the check's scheduling can pass:

* saturated: raw CPU / full CPU (client + server). When the cores are busy
  anyway (other processes, or both runs CPU-bound), wall time follows CPU time.
* idle cores: both runs at their CPU floor on cores of their own, each taking
  max(server CPU, client + server CPU / CPUs) seconds (the lab's server is one
  Python process, its GIL keeps it to about one core): raw floor / full floor.

Last, one thread decompresses and hashes every block body once, without I/O:
the CPU the verification itself needs, per MiB, beside what a raw GET costs
client and server per MiB.

``--latency-ms`` adds a delay to each block GET on the server side, the case of
a store behind a network link, where the check can hide its CPU work behind
the transfers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / ".collections"))

# pylint: disable=wrong-import-position
from tests.lab.longhorn.backupstore import BackupStore  # noqa: E402
from tests.lab.s3 import S3Server  # noqa: E402

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _backupstore as bs  # noqa: E402
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._bucket_inventory import BucketInspector  # noqa: E402
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import s3_client  # noqa: E402

MIB = 1024 * 1024
BLOCK = 2 * MIB
RESULTS = REPO_ROOT / "bench" / "results"
WORDS = [b"longhorn", b"replica", b"snapshot", b"backup", b"volume", b"engine", b"block", b"restore", b"\x00" * 16]


def block_data(rng):
    """2 MiB that compress to about half, like a filesystem with text and binary data."""
    text = b" ".join(rng.choice(WORDS) for _word in range(BLOCK // 16))[:BLOCK // 2]
    data = text + rng.randbytes(BLOCK // 2)
    return data[:BLOCK].ljust(BLOCK, b"\x00")


def populate(server, volumes, blocks, workers):
    store = BackupStore(server.client(), server.bucket)
    now = datetime.datetime.now(datetime.timezone.utc)

    def one_volume(index):
        rng = random.Random(index)
        name = "pvc-%04d-integrity" % index
        compression = "gzip" if index % 4 == 3 else "lz4"
        image = bytearray(b"".join(block_data(rng) for _block in range(blocks)))
        labels = {"KubernetesStatus": json.dumps({"namespace": "bench", "pvcName": "data-%d" % index, "pvName": name})}
        for number in range(2):
            if number:
                # The second backup changes a quarter of the blocks.
                for block in range(0, blocks, 4):
                    image[block * BLOCK:(block + 1) * BLOCK] = block_data(rng)
            writer = store.begin_backup(name, "backup-%04d-%d" % (index, number), compression=compression,
                                        volume_size=len(image), labels=labels)
            writer.write_image(bytes(image))
            taken = now - datetime.timedelta(hours=2 - number)
            writer.finish(snapshot_name="snap-%d" % number, snapshot_created_at=taken, created_at=taken,
                          volume_size=len(image), labels=labels)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one_volume, range(volumes)))
    zip_bytes = random.Random(-1).randbytes(4 * MIB)
    store.write_system_backup("v1.10.2", "bench-system-backup", zip_bytes, manager_image="longhornio/longhorn-manager:v1.10.2",
                              engine_image="longhornio/longhorn-engine:v1.10.2", git_commit="bench",
                              target_url=server.backup_target_url(), created_at=now)


def block_keys(client, bucket):
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="backupstore/"):
        keys.extend((obj["Key"], obj["Size"]) for obj in page.get("Contents", []) if obj["Key"].endswith(".blk"))
    return keys


def raw_run(client, bucket, keys, concurrency):
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(pool.map(lambda item: len(client.get_object(Bucket=bucket, Key=item[0])["Body"].read()), keys))


def full_run(client, bucket, concurrency):
    return BucketInspector(client, bucket, concurrency=concurrency).run(integrity="full")


def verify_cpu(client, bucket, keys):
    """(CPU seconds, plain bytes) to decompress and hash every block once in this thread, downloads not counted."""
    cpu = 0.0
    plain_bytes = 0
    for key, _size in keys:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        method = "gzip" if data.startswith(bs.GZIP_MAGIC) else "lz4"
        start = time.thread_time()
        plain = bs.decompress(data, method)
        checksum = bs.block_checksum(plain)
        cpu += time.thread_time() - start
        plain_bytes += len(plain)
        if checksum != key.rsplit("/", 1)[-1][:-len(".blk")]:
            raise RuntimeError("block %s does not hash to its name" % key)
    return cpu, plain_bytes


def process_cpu_seconds(pid):
    """User + system CPU seconds of a process (Linux /proc)."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(func, *args, server_pid=None):
    """(wall seconds, value, client CPU seconds, server CPU seconds)."""
    server_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    cpu_before = time.process_time()
    start = time.perf_counter()
    value = func(*args)
    wall = time.perf_counter() - start
    server = process_cpu_seconds(server_pid) - server_before if server_pid else 0.0
    return wall, value, time.process_time() - cpu_before, server


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=12)
    parser.add_argument("--blocks", type=int, default=12, help="2 MiB blocks per volume image")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay every block GET by this much on the server (the lab's 'slow' fault), like a network "
                             "link where bandwidth, not the server's CPU, is the limit")
    parser.add_argument("--link-gbps", type=float, default=0.0,
                        help="put the server behind one shared link of this many Gbit/s (1 = a gigabit LAN to MinIO): "
                             "raw and full then share the same bandwidth, as against a store on another machine")
    args = parser.parse_args()

    with S3Server() as server:
        params = {"endpoint_url": server.endpoint, "access_key": server.access_key, "secret_key": server.secret_key,
                  "region": server.region}
        client = s3_client(params, max_pool_connections=args.concurrency,
                           extra_config={"request_checksum_calculation": "when_required",
                                         "response_checksum_validation": "when_required"})
        seconds = timed(populate, server, args.volumes, args.blocks, 4)[0]
        keys = block_keys(client, server.bucket)
        stored = sum(size for _key, size in keys)
        print("populated %d volumes, %d block objects (%.0f MiB stored) in %.1f s" % (args.volumes, len(keys), stored / MIB, seconds))

        if args.latency_ms:
            server.faults.set("slow", delay=args.latency_ms / 1000.0, paths="*.blk")
        if args.link_gbps:
            server.set_link(args.link_gbps * 1e9 / 8)
        raw_run(client, server.bucket, keys[:32], args.concurrency)  # warm up connections, untimed
        server_pid = server._proc.pid  # pylint: disable=protected-access
        raws, fulls, raw_cpu, full_cpu = [], [], [], []
        result = None
        for _round in range(args.repeat):
            seconds, raw_bytes, client_cpu, server_cpu = timed(raw_run, client, server.bucket, keys, args.concurrency,
                                                               server_pid=server_pid)
            raws.append(seconds)
            raw_cpu.append((client_cpu, server_cpu))
            seconds, result, client_cpu, server_cpu = timed(full_run, client, server.bucket, args.concurrency, server_pid=server_pid)
            fulls.append(seconds)
            full_cpu.append((client_cpu, server_cpu))
        if args.latency_ms:
            server.faults.clear()
        server.set_link(0)
        verify_seconds, plain_bytes = verify_cpu(client, server.bucket, keys)

    integrity = result["integrity"]
    checks = {
        "all_blocks_checked": integrity["checked_blocks"] == len(keys),
        "bytes_match": integrity["bytes_read"] == raw_bytes == stored,
        "no_damage": integrity["missing_blocks"] == 0 and integrity["corrupt_blocks"] == 0,
        "system_backup_ok": [item["checksum"] for item in result["system_backups"]] == ["ok"],
    }
    raw = statistics.median(raws)
    full = statistics.median(fulls)
    raw_mbps = stored / MIB / raw
    full_mbps = integrity["bytes_read"] / MIB / full
    pairs = sorted(raw_seconds / full_seconds for raw_seconds, full_seconds in zip(raws, fulls))
    raw_cpu_total = statistics.median(client + server for client, server in raw_cpu)
    full_cpu_total = statistics.median(client + server for client, server in full_cpu)
    cpus = len(os.sched_getaffinity(0))
    raw_floor = max(statistics.median(server for _client, server in raw_cpu), raw_cpu_total / cpus)
    full_floor = max(statistics.median(server for _client, server in full_cpu), full_cpu_total / cpus)
    ceilings = {"saturated": round(raw_cpu_total / full_cpu_total, 3), "idle_cores": round(raw_floor / full_floor, 3)}
    per_mib = {
        "verify_ms": round(verify_seconds * 1000 / (stored / MIB), 2),
        "raw_get_client_ms": round(statistics.median(client for client, _server in raw_cpu) * 1000 / (stored / MIB), 2),
        "raw_get_server_ms": round(statistics.median(server for _client, server in raw_cpu) * 1000 / (stored / MIB), 2),
    }
    report = {
        "volumes": args.volumes, "block_objects": len(keys), "latency_ms": args.latency_ms, "link_gbps": args.link_gbps, "stored_mib": round(stored / MIB, 1),
        "concurrency": args.concurrency,
        "raw_seconds": raws, "full_seconds": fulls, "raw_mib_per_s": round(raw_mbps, 1), "full_mib_per_s": round(full_mbps, 1),
        "full_over_raw": round(full_mbps / raw_mbps, 3), "full_correct": checks,
        "full_over_raw_per_round": [round(value, 3) for value in pairs],
        "cpu_seconds_client_server": {"raw": raw_cpu, "full": full_cpu}, "load_average": os.getloadavg(), "cpus": cpus,
        "ceilings": ceilings, "cpu_ms_per_stored_mib": per_mib,
        "verify_only": {"cpu_seconds": round(verify_seconds, 3), "plain_mib": round(plain_bytes / MIB, 1)},
    }
    print("raw GET of the blocks:   median %.2f s  %.1f MiB/s  %s" % (raw, raw_mbps, ["%.2f" % value for value in raws]))
    print("integrity=full, all in:  median %.2f s  %.1f MiB/s  %s" % (full, full_mbps, ["%.2f" % value for value in fulls]))
    print("CPU seconds (client, server) per run: raw %s, full %s" % (
        ["%.2f, %.2f" % pair for pair in raw_cpu], ["%.2f, %.2f" % pair for pair in full_cpu]))
    print("load average: %.2f %.2f %.2f on %d CPUs; block GET latency added: %.0f ms; link: %s"
          % (os.getloadavg() + (os.cpu_count(), args.latency_ms, "%g Gbit/s" % args.link_gbps if args.link_gbps else "none (loopback)")))
    print("full / raw throughput = %.2f  (target >= 0.70); per raw/full pair: min %.2f, median %.2f, max %.2f"
          % (report["full_over_raw"], pairs[0], statistics.median(pairs), pairs[-1]))
    print("CPU ms per stored MiB: verification alone (decompress + SHA-512, one thread) %.2f; raw GET %.2f client + %.2f server"
          % (per_mib["verify_ms"], per_mib["raw_get_client_ms"], per_mib["raw_get_server_ms"]))
    print("ceilings of full / raw from CPU seconds: saturated (raw CPU / full CPU) %.2f; idle cores (CPU floors on %d CPUs, "
          "%.2f s / %.2f s) %.2f" % (ceilings["saturated"], cpus, raw_floor, full_floor, ceilings["idle_cores"]))
    print("full result checks: %s" % ", ".join("%s=%s" % item for item in checks.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ("-latency" if args.latency_ms else "") + ("-link" if args.link_gbps else "")
    (RESULTS / ("bucket_integrity%s.json" % suffix)).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
