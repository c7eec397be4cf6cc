# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: minio_bucket_check's quick inventory against its floor and against reading every backup cfg.

Run from the repository root::

    .venv/bin/python bench/bench_bucket_inventory.py [--volumes 500] [--backups 20]

It starts the lab's S3 server, fills the bucket with the backupstore layout
(volume.cfg, backup cfgs and block objects written with the lab's BackupStore
encoders, one PutObject each), then times, in the same run:

* floor: one paginated LIST of the backupstore prefix, then concurrent GETs of
  every volume.cfg at the same concurrency as the inventory;
* inventory: ``BucketInspector.run(integrity="none")``, the module's logic
  without the Ansible process around it;
* sequential: the same LIST, then every volume.cfg and backup cfg read one
  after another.

With ``--with-structure`` it also times what the backup gate reads by default (issue 10):

* gate floor: the LIST, then concurrent GETs of every volume.cfg and of the one backup cfg per volume that a
  restore of the latest backup uses (the least that proves its blocks are all listed);
* structure: ``BucketInspector.run(integrity="structure")``, which reads every backup cfg.

Targets (issue 3, Speed): inventory <= 2x floor, and sequential >= 5x inventory.
Each measurement is repeated (``--repeat``) and the median is used. Results
are printed and written to bench/results/bucket_inventory.json.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / ".collections"))

# pylint: disable=wrong-import-position
from tests.lab.longhorn.backupstore import BackupStore, go_time  # noqa: E402
from tests.lab.s3 import S3Server  # noqa: E402

from ansible_collections.homelab.longhorn_dr.plugins.module_utils._bucket_inventory import BucketInspector  # noqa: E402
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import s3_client  # noqa: E402

MIB = 1024 * 1024
RESULTS = REPO_ROOT / "bench" / "results"


def checksum(text):
    return hashlib.sha512(text.encode("utf-8")).hexdigest()[:64]


def populate_volume(store, index, backups, blocks_per_backup, interrupted):
    """One volume: its blocks, ``backups`` complete cfgs (each replacing one block), then volume.cfg.

    Block objects hold a few placeholder bytes: the inventory lists blocks but never reads them.
    """
    name = "pvc-%08x-bench" % index
    labels = {"KubernetesStatus": json.dumps({"namespace": "ns-%d" % (index % 7), "pvcName": "data-%d" % index,
                                              "pvName": name, "workloadsStatus": None}),
              "longhorn.io/volume-access-mode": "rwo"}
    block_map = {offset: checksum("%s-%d-0" % (name, offset)) for offset in range(blocks_per_backup)}
    written = set()
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    size = blocks_per_backup * 2 * MIB
    last = None
    for number in range(backups):
        if number:
            block_map[number % blocks_per_backup] = checksum("%s-%d-%d" % (name, number % blocks_per_backup, number))
        for value in block_map.values():
            if value not in written:
                store.put(store.block_key(name, value), b"placeholder block " + value.encode())
                written.add(value)
        taken = start + datetime.timedelta(hours=number)
        last = "backup-%s-%03d" % (name[4:12], number)
        store.write_backup_cfg({
            "Name": last, "VolumeName": name, "SnapshotName": "snap-%03d" % number,
            "SnapshotCreatedAt": go_time(taken), "CreatedTime": go_time(taken + datetime.timedelta(minutes=2)),
            "Size": blocks_per_backup * 2 * MIB, "Labels": labels,
            "Parameters": {"backup-mode": "incremental", "backup-block-size": str(2 * MIB)},
            "IsIncremental": number > 0, "CompressionMethod": "lz4",
            "Blocks": [{"Offset": offset * 2 * MIB, "BlockChecksum": block_map[offset]} for offset in sorted(block_map)],
        })
    if interrupted:
        # An aborted backup: the in-progress stub stays behind (ref §3.3 backup cfg).
        store.write_backup_cfg({"Name": "backup-%s-aborted" % name[4:12], "VolumeName": name, "CompressionMethod": "lz4",
                                "CreatedTime": ""})
    store.write_volume_cfg({
        "Name": name, "Size": size, "Labels": labels, "CreatedTime": go_time(start), "LastBackupName": last,
        "LastBackupAt": go_time(start + datetime.timedelta(hours=backups - 1)), "BlockCount": len(written),
        "BackingImageName": "", "BackingImageChecksum": "", "CompressionMethod": "lz4", "StorageClassName": "longhorn",
        "DataEngine": "",
    })
    return len(written) + backups + (1 if interrupted else 0) + 1


def populate(server, volumes, backups, blocks_per_backup, interrupted_every, workers):
    store = BackupStore(server.client(), server.bucket)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        counts = pool.map(lambda index: populate_volume(store, index, backups, blocks_per_backup,
                                                        interrupted_every and index % interrupted_every == 0),
                          range(volumes))
        return sum(counts)


def list_all(client, bucket, prefix):
    objects = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


def floor_run(client, bucket, concurrency):
    """LIST everything, then GET the volume.cfg files concurrently."""
    objects = list_all(client, bucket, "backupstore/")
    keys = [obj["Key"] for obj in objects if obj["Key"].endswith("/volume.cfg")]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sizes = list(pool.map(lambda key: len(client.get_object(Bucket=bucket, Key=key)["Body"].read()), keys))
    return len(keys), sum(sizes)


def sequential_run(client, bucket):
    """LIST everything, then read every volume.cfg and backup cfg one after another."""
    objects = list_all(client, bucket, "backupstore/")
    keys = [obj["Key"] for obj in objects if obj["Key"].endswith(".cfg") and "/volumes/" in "/" + obj["Key"]]
    total = 0
    for key in keys:
        total += len(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return len(keys), total


def gate_floor_run(client, bucket, concurrency):
    """LIST everything, then GET every volume.cfg and, per volume, the cfg of its LastBackupName."""
    objects = list_all(client, bucket, "backupstore/")
    keys = [obj["Key"] for obj in objects if obj["Key"].endswith("/volume.cfg")]

    def volume_and_last(key):
        cfg = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        last_key = key[:-len("volume.cfg")] + "backups/backup_%s.cfg" % cfg["LastBackupName"]
        return len(client.get_object(Bucket=bucket, Key=last_key)["Body"].read())
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(pool.map(volume_and_last, keys))


def structure_run(client, bucket, concurrency):
    return BucketInspector(client, bucket, concurrency=concurrency).run(integrity="structure")


def inventory_run(client, bucket, concurrency):
    result = BucketInspector(client, bucket, concurrency=concurrency).run(integrity="none")
    return result


def list_only(client, bucket):
    return len(list_all(client, bucket, "backupstore/"))


def timed(func, *args):
    start = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - start, value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--backups", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=8, help="blocks per backup (each backup replaces one)")
    parser.add_argument("--interrupted-every", type=int, default=50, help="every Nth volume also has an aborted backup stub")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-sequential", action="store_true", help="do not time the (slow) sequential baseline")
    parser.add_argument("--with-structure", action="store_true", help="also time the gate's default (integrity=structure)")
    args = parser.parse_args()

    with S3Server() as server:
        params = {"endpoint_url": server.endpoint, "access_key": server.access_key, "secret_key": server.secret_key,
                  "region": server.region}
        client = s3_client(params, max_pool_connections=args.concurrency,
                           extra_config={"request_checksum_calculation": "when_required",
                                         "response_checksum_validation": "when_required"})
        populate_seconds, objects = timed(populate, server, args.volumes, args.backups, args.blocks, args.interrupted_every,
                                          args.concurrency)
        print("populated %d objects (%d volumes x %d backups) in %.1f s" % (objects, args.volumes, args.backups, populate_seconds))

        # Warm up connections and moto's caches once, untimed.
        floor_run(client, server.bucket, args.concurrency)
        floors, inventories, sequentials, listings, gate_floors, structures = [], [], [], [], [], []
        result = structure = None
        for _round in range(args.repeat):
            seconds, _value = timed(floor_run, client, server.bucket, args.concurrency)
            floors.append(seconds)
            seconds, result = timed(inventory_run, client, server.bucket, args.concurrency)
            inventories.append(seconds)
            if args.with_structure:
                seconds, _value = timed(gate_floor_run, client, server.bucket, args.concurrency)
                gate_floors.append(seconds)
                seconds, structure = timed(structure_run, client, server.bucket, args.concurrency)
                structures.append(seconds)
        seconds, _value = timed(list_only, client, server.bucket)
        listings.append(seconds)
        if not args.skip_sequential:
            seconds, _value = timed(sequential_run, client, server.bucket)
            sequentials.append(seconds)

    volumes = result["volumes"]
    incomplete = sum(volume["incomplete_backups"] for volume in volumes)
    expected_incomplete = len(range(0, args.volumes, args.interrupted_every)) if args.interrupted_every else 0
    checks = {
        "volumes": len(volumes) == args.volumes,
        "backups": all(volume["backup_count"] == args.backups for volume in volumes),
        "incomplete": incomplete == expected_incomplete,
        "pvc_names": all(volume["pvc_name"] for volume in volumes),
    }
    floor = statistics.median(floors)
    inventory = statistics.median(inventories)
    report = {
        "volumes": args.volumes, "backups_per_volume": args.backups, "objects": objects, "concurrency": args.concurrency,
        "floor_seconds": floors, "inventory_seconds": inventories, "sequential_seconds": sequentials,
        "list_only_seconds": listings, "load_average": os.getloadavg(),
        "inventory_over_floor": round(inventory / floor, 2),
        "sequential_over_inventory": round(sequentials[0] / inventory, 2) if sequentials else None,
        "inventory_correct": checks,
        "gate_floor_seconds": gate_floors, "structure_seconds": structures,
    }
    if structures:
        checks["structure_found_every_block"] = structure["integrity"]["missing_blocks"] == 0 and all(
            volume["integrity_checked"] for volume in structure["volumes"])
        report["structure_over_gate_floor"] = round(statistics.median(structures) / statistics.median(gate_floors), 2)
        report["structure_over_inventory"] = round(statistics.median(structures) / statistics.median(inventories), 2)
    print("floor (LIST + concurrent volume.cfg GETs): median %.2f s  %s" % (floor, ["%.2f" % value for value in floors]))
    print("inventory (integrity=none):                median %.2f s  %s" % (inventory, ["%.2f" % value for value in inventories]))
    if sequentials:
        print("sequential read of every cfg:              %.2f s" % sequentials[0])
    print("of which the paginated LIST alone:         %.2f s" % listings[0])
    print("load average: %.2f %.2f %.2f on %d CPUs" % (os.getloadavg() + (os.cpu_count(),)))
    print("inventory / floor      = %.2f  (target <= 2.0)" % report["inventory_over_floor"])
    if sequentials:
        print("sequential / inventory = %.2f  (target >= 5.0)" % report["sequential_over_inventory"])
    if structures:
        print("gate floor (LIST + volume.cfg + latest cfg): median %.2f s  %s" % (
            statistics.median(gate_floors), ["%.2f" % value for value in gate_floors]))
        print("structure (the gate's default):            median %.2f s  %s" % (
            statistics.median(structures), ["%.2f" % value for value in structures]))
        print("structure / gate floor  = %.2f   structure / inventory = %.2f" % (
            report["structure_over_gate_floor"], report["structure_over_inventory"]))
    print("inventory result checks: %s" % ", ".join("%s=%s" % item for item in checks.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bucket_inventory.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
