# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulator's volume controller: attachment tickets, deletion, kubernetesStatus and restore (ref §1.5)."""

from __future__ import annotations

import json
import os
import time

from tests.lab.longhorn import attachments, volumedata
from tests.lab.longhorn.backupstore import encode_backup_url
from tests.lab.longhorn.volume_controller import RESTORE_FAILURE_MESSAGE, get_condition, restore_ticket_id
from tests.unit.lab.test_longhorn_volume_harness import (  # noqa: F401 pylint: disable=unused-import
    MIB,
    NS,
    env,
    lh,
    wait_for,
)

BACKUP = "backup-0a1b2c3d4e5f6a7b"


def _va(env):  # pylint: disable=redefined-outer-name
    return lh(env.store, "volumeattachments")


def _ticket_status(env, volume, ticket):  # pylint: disable=redefined-outer-name
    va = env.store.try_get(_va(env), NS, volume) or {}
    return ((va.get("status") or {}).get("attachmentTicketStatuses") or {}).get(ticket)


def test_new_volume_is_detached_with_unknown_robustness_and_conditions(env):  # pylint: disable=redefined-outer-name
    env.create_volume("vol-a")
    volume = env.wait_state("vol-a", "detached")
    status = volume["status"]
    assert status["robustness"] == "unknown"
    assert status["currentNodeID"] == ""
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Restore": "False", "Scheduled": "True", "TooManySnapshots": "False", "WaitForBackingImage": "False"}
    assert volume["metadata"]["finalizers"] == ["longhorn.io"]
    # ref §1.9: a volume without job labels joins the default group.
    assert volume["metadata"]["labels"]["recurring-job-group.longhorn.io/default"] == "enabled"
    assert env.store.try_get(_va(env), NS, "vol-a")["spec"]["volume"] == "vol-a"


def test_ticket_attaches_and_its_removal_detaches(env):  # pylint: disable=redefined-outer-name
    env.create_volume("vol-b")
    env.wait_state("vol-b", "detached")
    attachments.add_ticket(env.store, "vol-b", "csi-abc", attachments.CSI_ATTACHER)
    volume = env.wait_state("vol-b", "attached")
    assert volume["status"]["robustness"] == "healthy"
    assert volume["status"]["currentNodeID"] == attachments.LAB_NODE
    assert volume["spec"]["nodeID"] == attachments.LAB_NODE
    wait_for(lambda: attachments.ticket_satisfied(env.store, "vol-b", "csi-abc"), what="ticket satisfied")
    status = _ticket_status(env, "vol-b", "csi-abc")
    assert get_condition(status["conditions"], "Satisfied")["status"] == "True"

    attachments.remove_ticket(env.store, "vol-b", "csi-abc")
    volume = env.wait_state("vol-b", "detached")
    assert volume["status"]["robustness"] == "unknown"
    assert volume["status"]["currentNodeID"] == ""
    assert volume["spec"]["nodeID"] == ""
    assert _ticket_status(env, "vol-b", "csi-abc") is None


def test_volume_passes_through_attaching_and_detaching(env):  # pylint: disable=redefined-outer-name
    seen = []
    env.store.add_listener(lambda e: seen.append((e.obj.get("status") or {}).get("state"))
                           if e.rtype_key == ("longhorn.io", "volumes") and e.obj["metadata"]["name"] == "vol-c" else None)
    env.create_volume("vol-c")
    env.wait_state("vol-c", "detached")
    attachments.add_ticket(env.store, "vol-c", "t1", attachments.LONGHORN_API)
    env.wait_state("vol-c", "attached")
    attachments.remove_ticket(env.store, "vol-c", "t1")
    env.wait_state("vol-c", "detached")
    # The listener hears the informer's watch, which may trail the GET wait_state just saw.
    wait_for(lambda: seen[-1] == "detached", what="the informer's last event")
    states = [s for i, s in enumerate(seen) if s and (i == 0 or seen[i - 1] != s)]
    assert states == ["creating", "detached", "attaching", "attached", "detaching", "detached"]


def test_deleting_a_volume_removes_attachment_data_and_finalizer(env):  # pylint: disable=redefined-outer-name
    env.create_volume("vol-d")
    env.wait_state("vol-d", "detached")
    data_dir = env.write_files("vol-d", {"f.txt": b"data"})
    env.store.delete(lh(env.store, "volumes"), NS, "vol-d")
    wait_for(lambda: env.volume("vol-d") is None, what="volume gone")
    assert env.store.try_get(_va(env), NS, "vol-d") is None
    assert not os.path.exists(data_dir)


def _pv(name, volume, claim=None):
    spec = {"capacity": {"storage": "8Mi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "longhorn-static", "volumeMode": "Filesystem",
            "csi": {"driver": "driver.longhorn.io", "volumeHandle": volume, "fsType": "ext4"}}
    if claim:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": claim[0], "name": claim[1]}
    return {"metadata": {"name": name}, "spec": spec}


def _pod(name, claim):
    spec = {"containers": [{"name": "app", "image": "busybox"}], "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def _phase(env, kind, namespace, name):  # pylint: disable=redefined-outer-name
    return ((env.store.try_get(kind, namespace, name) or {}).get("status") or {}).get("phase")


def _ks(env, name):  # pylint: disable=redefined-outer-name
    return (env.volume(name).get("status") or {}).get("kubernetesStatus") or {}


def test_kubernetes_status_follows_pv_pvc_and_pods(env):  # pylint: disable=redefined-outer-name
    """The real controller-manager binds, runs the StatefulSet's pod and releases; the volume's status follows."""
    env.create_volume("vol-k")
    env.wait_state("vol-k", "detached")
    env.store.create("persistentvolumeclaims", {"metadata": {"name": "data-app-0", "namespace": "default"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn-static", "volumeName": "pv-k",
        "resources": {"requests": {"storage": "8Mi"}}}})
    env.store.create("persistentvolumes", _pv("pv-k", "vol-k", ("default", "data-app-0")))
    wait_for(lambda: _ks(env, "vol-k").get("pvStatus") == "Bound", what="pvStatus Bound")
    ks = _ks(env, "vol-k")
    assert (ks["pvName"], ks["namespace"], ks["pvcName"], ks["lastPVCRefAt"]) == ("pv-k", "default", "data-app-0", "")

    labels = {"app": "app"}
    env.store.create(("apps", "statefulsets"), {"metadata": {"name": "app", "namespace": "default"}, "spec": {
        "replicas": 1, "serviceName": "app", "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{"name": "app", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-app-0"}}]}}}})
    env.store.create("pods", _pod("other", "unrelated-claim"))
    wait_for(lambda: _phase(env, "pods", "default", "app-0") == "Running", timeout=60, what="app-0 Running")
    wait_for(lambda: _ks(env, "vol-k").get("workloadsStatus"), what="workloads")
    wait_for(lambda: _ks(env, "vol-k")["workloadsStatus"][0]["podStatus"] == "Running", what="pod Running")
    assert _ks(env, "vol-k")["workloadsStatus"] == [
        {"podName": "app-0", "podStatus": "Running", "workloadName": "app", "workloadType": "StatefulSet"}]
    assert _ks(env, "vol-k")["lastPodRefAt"] == ""

    # Scaled to zero: the pod goes (deleted, the StatefulSet would make it again).
    env.store.modify(("apps", "statefulsets"), "default", "app", lambda obj: obj["spec"].update(replicas=0))
    wait_for(lambda: _ks(env, "vol-k").get("lastPodRefAt"), timeout=60, what="lastPodRefAt")
    # The workloads stay as history.
    assert _ks(env, "vol-k")["workloadsStatus"][0]["podName"] == "app-0"

    env.store.delete("persistentvolumeclaims", "default", "data-app-0")
    wait_for(lambda: _phase(env, "persistentvolumes", "", "pv-k") == "Released", timeout=60, what="PV Released")
    wait_for(lambda: _ks(env, "vol-k").get("lastPVCRefAt"), what="lastPVCRefAt")
    ks = _ks(env, "vol-k")
    assert (ks["pvStatus"], ks["pvcName"], ks["namespace"]) == ("Released", "data-app-0", "default")

    env.store.delete("persistentvolumes", "", "pv-k")
    wait_for(lambda: _ks(env, "vol-k").get("pvName") == "", timeout=30, what="pvName cleared")
    assert _ks(env, "vol-k")["pvStatus"] == ""


def _backed_up_source(env, tmp_path, labels=None):  # pylint: disable=redefined-outer-name
    source = tmp_path / "source"
    source.mkdir()
    (source / "dir").mkdir()
    (source / "dir" / "big.bin").write_bytes(os.urandom(3 * MIB))
    (source / "hello.txt").write_bytes(b"hello from the old cluster\n")
    image = volumedata.image_from_dir(str(source), 8 * MIB)
    env.write_backup("src-vol", BACKUP, image, 8 * MIB, labels=labels, snapshot_created_at="2026-11-20T10:00:00Z")
    env.sync_backup_crs("src-vol", BACKUP)
    return str(source)


def _from_backup(env, host="s3://somewhere-else@eu-west-1/ignored/"):  # pylint: disable=redefined-outer-name
    # ref §1.5 step 4: only the backup and volume query parameters matter.
    return encode_backup_url(BACKUP, "src-vol", host)


def test_restore_from_backup_recreates_the_data_and_detaches(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.configure_target()
    k8s_status = {"pvName": "pvc-old", "pvStatus": "Bound", "namespace": "apps", "pvcName": "data", "lastPVCRefAt": "",
                  "lastPodRefAt": "", "workloadsStatus": [{"podName": "app-0", "podStatus": "Running", "workloadName": "app",
                                                           "workloadType": "StatefulSet"}]}
    source = _backed_up_source(env, tmp_path, labels={"KubernetesStatus": json.dumps(k8s_status),
                                                      "longhorn.io/volume-access-mode": "rwx"})
    seen_restoring = []
    env.store.add_listener(lambda e: seen_restoring.append(get_condition((e.obj.get("status") or {}).get("conditions"), "Restore"))
                           if e.rtype_key == ("longhorn.io", "volumes") and e.obj["metadata"]["name"] == "restored" else None)
    volume = env.create_volume("restored", size=2 * MIB, fromBackup=_from_backup(env))
    # ref §1.5: the size is the backup's, the access mode comes from the backup label.
    assert volume["spec"]["size"] == str(8 * MIB)
    assert volume["spec"]["accessMode"] == "rwx"

    volume = env.wait_volume("restored", lambda v: v["status"].get("restoreInitiated") and not v["status"].get("restoreRequired")
                             and v["status"].get("state") == "detached", what="restore finished and detached")
    assert volumedata.dir_digest(env.ctx.volume_data_dir("restored")) == volumedata.dir_digest(source)
    status = volume["status"]
    assert status["robustness"] == "unknown"
    assert get_condition(status["conditions"], "Restore")["status"] == "False"
    assert any(c["status"] == "True" and c["reason"] == "RestoreInProgress" for c in seen_restoring)
    # ref §1.5 step 2: KubernetesStatus from the backup label, PV fields cleared, lastPVCRefAt = snapshot time.
    ks = status["kubernetesStatus"]
    assert (ks["pvName"], ks["pvStatus"], ks["namespace"], ks["pvcName"]) == ("", "", "apps", "data")
    assert ks["lastPVCRefAt"] == "2026-11-20T10:00:00Z"
    assert ks["lastPodRefAt"] == "2026-11-20T10:00:00Z"
    assert restore_ticket_id("restored") not in attachments.tickets(env.store, "restored")


def test_restore_attaches_with_a_restore_ticket_while_running(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.config.restore_speed_mbps = 8.0     # 8 MiB image, ~3 MiB of data: about 0.4 s of data movement
    env.configure_target()
    _backed_up_source(env, tmp_path)
    env.create_volume("slow", fromBackup=_from_backup(env))
    volume = env.wait_state("slow", "attached")
    assert volume["status"]["restoreRequired"] is True
    assert volume["spec"]["disableFrontend"] is True
    assert attachments.tickets(env.store, "slow")[restore_ticket_id("slow")]["type"] == "volume-restore-controller"
    started = time.monotonic()
    env.wait_volume("slow", lambda v: not v["status"]["restoreRequired"], what="restore done")
    assert time.monotonic() - started > 0.2


def _corrupt_first_block(env):  # pylint: disable=redefined-outer-name
    store = env.backupstore()
    cfg = store.read_backup_cfg("src-vol", BACKUP)
    checksum = cfg["Blocks"][0]["BlockChecksum"]
    store.put(store.block_key("src-vol", checksum), b"definitely not an lz4 frame")


def test_corrupt_block_faults_the_restore(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.configure_target()
    _backed_up_source(env, tmp_path)
    _corrupt_first_block(env)
    env.create_volume("broken", fromBackup=_from_backup(env))
    volume = env.wait_volume("broken", lambda v: v["status"].get("robustness") == "faulted" and v["status"]["state"] == "detached",
                             what="faulted and detached")
    restore = get_condition(volume["status"]["conditions"], "Restore")
    assert (restore["status"], restore["reason"], restore["message"]) == ("False", "RestoreFailure", RESTORE_FAILURE_MESSAGE)
    assert volume["status"]["restoreRequired"] is True
    # The volume is not usable: a workload's ticket is not satisfied.
    attachments.add_ticket(env.store, "broken", "csi-x", attachments.CSI_ATTACHER)
    time.sleep(0.3)
    assert env.volume("broken")["status"]["state"] == "detached"
    assert not attachments.ticket_satisfied(env.store, "broken", "csi-x")
    assert os.listdir(env.ctx.volume_data_dir("broken")) == []


def test_injected_restore_failure_faults_the_volume(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.configure_target()
    _backed_up_source(env, tmp_path)
    env.faults.fail_restore("doomed")
    env.create_volume("fine", fromBackup=_from_backup(env))
    env.create_volume("doomed", fromBackup=_from_backup(env))
    doomed = env.wait_volume("doomed", lambda v: v["status"].get("robustness") == "faulted", what="doomed faulted")
    assert get_condition(doomed["status"]["conditions"], "Restore")["reason"] == "RestoreFailure"
    fine = env.wait_volume("fine", lambda v: v["status"].get("restoreInitiated") and not v["status"]["restoreRequired"], what="fine restored")
    assert fine["status"]["robustness"] != "faulted"


def test_restoring_volume_serves_a_workload_only_after_the_restore(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.config.restore_speed_mbps = 8.0
    env.configure_target()
    _backed_up_source(env, tmp_path)
    env.create_volume("wl", fromBackup=_from_backup(env))
    env.wait_state("wl", "attached")
    attachments.add_ticket(env.store, "wl", "csi-wl", attachments.CSI_ATTACHER)
    # The restore ticket wins (priority 2000) and wants no frontend: the workload waits.
    wait_for(lambda: (_ticket_status(env, "wl", "csi-wl") or {}).get("conditions"), what="csi ticket status")
    status = _ticket_status(env, "wl", "csi-wl")
    assert status["satisfied"] is False
    assert get_condition(status["conditions"], "Satisfied")["reason"] == "AttachedWithIncompatibleParameters"
    wait_for(lambda: attachments.ticket_satisfied(env.store, "wl", "csi-wl"), timeout=20, what="csi ticket satisfied after restore")
    volume = env.volume("wl")
    assert volume["status"]["state"] == "attached"
    assert volume["status"]["restoreRequired"] is False
    assert volume["spec"]["disableFrontend"] is False


def test_standby_volume_keeps_restoring_until_activated(env, tmp_path):  # pylint: disable=redefined-outer-name
    env.configure_target()
    source = _backed_up_source(env, tmp_path)
    # A DR volume needs no frontend (the validator exempts standby volumes).
    env.create_volume("dr", frontend="", fromBackup=_from_backup(env), Standby=True)
    volume = env.wait_volume("dr", lambda v: v["status"].get("isStandby") and v["status"].get("state") == "attached", what="standby attached")
    wait_for(lambda: volumedata.dir_digest(env.ctx.volume_data_dir("dr")) == volumedata.dir_digest(source), what="standby data")
    time.sleep(0.3)
    volume = env.volume("dr")
    assert volume["status"]["restoreRequired"] is True
    assert volume["status"]["state"] == "attached"

    def _activate(obj):
        obj["spec"]["Standby"] = False
        obj["spec"]["frontend"] = "blockdev"
    env.store.modify(lh(env.store, "volumes"), NS, "dr", _activate)
    volume = env.wait_volume("dr", lambda v: not v["status"]["restoreRequired"] and v["status"]["state"] == "detached", what="activated")
    assert volume["status"]["isStandby"] is False
