#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: longhorn_cluster_state
short_description: Export the Kubernetes and Longhorn objects a restore needs, with a manifest, or fetch an export from the bucket
version_added: 1.0.0
description:
  - Reads PVCs, PVs, Longhorn volumes, StorageClasses, RecurringJobs and BackupTargets (one list request per kind)
    and writes them to O(dest) as cleaned, diff-friendly YAML, one C(v1/List) file per kind, then C(manifest.json).
  - "Files: C(persistentvolumeclaims.yaml), C(persistentvolumes.yaml), C(volumes.yaml), C(storageclasses.yaml),
    C(recurringjobs.yaml), C(backuptargets.yaml) and, on Longhorn 1.7 and earlier, C(settings.yaml) with the
    C(backup-target), C(backup-target-credential-secret) and C(backupstore-poll-interval) Settings, which are the
    source of truth of the backup target there."
  - "What is exported: PVs whose C(csi.driver) is C(driver.longhorn.io); the PVCs bound to them; StorageClasses whose
    provisioner is C(driver.longhorn.io) and any other StorageClass such a PV or PVC names; all volumes, RecurringJobs
    and BackupTargets in O(namespace)."
  - "Cleaning: items are sorted by namespace and name, keys are sorted. C(managedFields), C(resourceVersion), C(uid),
    C(creationTimestamp), C(generation), C(selfLink), C(ownerReferences), the C(kubectl.kubernetes.io/last-applied-configuration),
    C(longhorn.io/last-applied-configmap) and C(pv.kubernetes.io/bind-*) annotations are removed. The status is removed,
    except on volumes, which keep C(lastBackup), C(lastBackupAt), C(isStandby) and the PV/PVC names of C(kubernetesStatus).
    Volumes lose C(spec.nodeID), C(spec.migrationNodeID) and C(spec.lastAttachedBy) (where they are attached now),
    PVs the C(uid) and C(resourceVersion) of their C(claimRef),
    BackupTargets their C(spec.syncRequestedAt), which Longhorn rewrites on every poll."
  - Secrets are never read. A BackupTarget only names its credential Secret.
  - C(manifest.json) is written last, so that it never names a file that is not there. It holds the format
    C(homelab.longhorn_dr/cluster-state/v1), the export time, the Longhorn and Kubernetes versions, the SHA-256 and
    object count of each file, the mapping PVC -> PV -> volume -> last backup, and the O(baselines).
  - With O(upload=true) the files and the manifest are also put into the bucket under
    C(<upload_prefix><export time>/), for example C(cluster-state/20261122T012345Z/manifest.json). A prefix inside the
    backupstore (C(<prefix>/backupstore/)) is refused, because the backupstore must only hold Longhorn's objects.
  - "With O(state=fetched) the module does not read the cluster: it downloads the newest complete export under
    O(upload_prefix) in O(bucket) into O(dest), for a job that runs where no earlier export is on disk (an AWX job
    runs in a fresh container). Complete means that the folder has its C(manifest.json), which the upload puts last;
    newer folders without one (an upload that did not finish) are skipped and listed in RV(skipped_exports)."
  - "Every file the manifest lists is downloaded and checked against its SHA-256 before anything is written; a missing
    or damaged file fails the task naming the file, and O(dest) is left as it was. Then the manifest already in O(dest)
    is removed, the files are written, and the new manifest last, so that O(dest) never holds a manifest naming files
    that are not its own."
author:
  - homelab.longhorn_dr contributors (@homelab)
requirements:
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
  - boto3 >= 1.36.0 (with O(upload=true) or O(state=fetched))
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - homelab.longhorn_dr._s3_connection
  - homelab.longhorn_dr._attributes
  - homelab.longhorn_dr._attributes.ACTIONGROUP_LONGHORN
attributes:
  check_mode:
    support: full
    details:
      - Reads the cluster, builds the export and reports what would change; writes no file and uploads nothing.
      - The Kubernetes API is only read, in check mode and outside it.
      - With O(state=fetched), reads the bucket's listing and the newest export's manifest, and reports the files it would
        download (RV(fetched)); downloads no other file and writes nothing, so the files' SHA-256 are only checked outside
        check mode.
  diff_mode:
    support: full
    details:
      - One diff per file that changes (or would change), with the old and new text.
      - With O(state=fetched) in check mode, where the files are not downloaded, there is no diff; RV(fetched) lists them.
  idempotent:
    support: partial
    details:
      - Every run is a new export (at least the manifest's C(exported_at) changes) unless O(max_age) is set.
        With O(max_age), a run finds the export in O(dest) with identical content and younger than O(max_age),
        writes nothing and reports no change.
      - With O(state=fetched), when O(dest) already holds the newest export of the bucket (the same manifest) with every
        file matching its SHA-256, nothing is downloaded or written and C(changed) is false.
options:
  state:
    description:
      - V(present) exports the cluster into O(dest) (and uploads it with O(upload=true)).
      - V(fetched) downloads the newest complete export under O(upload_prefix) in O(bucket) into O(dest) instead, verifying
        every file; the cluster is not contacted. Needs O(bucket) and O(endpoint_url); O(upload), O(max_age) and
        O(baselines) do not apply and are refused.
    type: str
    choices: [present, fetched]
    default: present
  namespace:
    description: The Longhorn namespace, where volumes, RecurringJobs, BackupTargets and Settings live.
    type: str
    default: longhorn-system
  dest:
    description:
      - Directory of the export on the host the module runs on; created when missing.
      - Files of an earlier export with the same names are replaced. Other files in it are left alone.
      - With O(state=fetched), where the downloaded export goes.
    type: path
    required: true
  baselines:
    description:
      - Application baselines already gathered (for example by the C(homelab.longhorn_dr.cluster_state) role with
        M(kubernetes.core.k8s_exec)), recorded verbatim in the manifest so that a restore can be verified against them.
      - Each entry is a dict with a unique C(name); the role gives C(name), C(namespace), C(pod), C(container),
        C(command), C(stdout), C(stderr) and C(rc).
    type: list
    elements: dict
    default: []
  max_age:
    description:
      - When the export in O(dest) has the same content as the cluster now (everything but C(exported_at)), its files
        are intact and it is younger than this, nothing is written and C(changed) is false.
      - Seconds, or a Go duration such as C(1h) or C(24h0m0s).
      - Unset means every run writes a new export.
    type: str
  upload:
    description:
      - Also put the export into the bucket O(bucket) under O(upload_prefix).
      - When the export in O(dest) is reused (O(max_age)), it is uploaded only if the bucket does not have it yet.
    type: bool
    default: false
  upload_prefix:
    description:
      - Key prefix, from the bucket root, of the uploaded exports; each export goes to C(<upload_prefix><YYYYMMDDTHHMMSSZ>/).
      - Refused when it lies inside the backupstore C(<prefix>/backupstore/).
      - With O(state=fetched), where the exports are looked for.
    type: str
    default: cluster-state/
  endpoint_url:
    description:
      - URL of the S3 API, for example V(https://minio.example.com:9000).
      - Required with O(upload=true) and with O(state=fetched).
    required: false
  bucket:
    description:
      - The bucket of the backup target, the C(<bucket>) of C(s3://<bucket>@<region>/<prefix>/).
      - Required with O(upload=true) and with O(state=fetched).
    required: false
  prefix:
    description:
      - The path of the backup target URL, the C(<prefix>) of C(s3://<bucket>@<region>/<prefix>/).
      - Only used to locate the backupstore, C(<prefix>/backupstore/), which O(upload_prefix) must stay out of.
  validate_certs:
    description:
      - Whether to verify the Kubernetes API server's TLS certificate (also C(K8S_AUTH_VERIFY_SSL)).
      - For the S3 endpoint use O(s3_validate_certs).
    type: bool
    default: null
  s3_validate_certs:
    description:
      - Whether to verify the S3 endpoint's TLS certificate.
      - Named apart from O(validate_certs), which is the Kubernetes API's.
    type: bool
    default: true
  access_key:
    description:
      - The access key ID (C(AWS_ACCESS_KEY_ID)). Like O(secret_key), never shown in results.
      - When neither O(access_key) nor O(secret_key) is given, boto3 looks for credentials
        the usual way (environment variables, shared credentials file).
  ca_bundle:
    description:
      - A PEM file with the CA certificates to trust for the S3 endpoint instead of the system ones.
      - Ignored when O(s3_validate_certs=false).
notes:
  - Pending PVCs (not bound to a Longhorn PV yet) are not exported.
  - Backup CRs are read for the manifest's C(last_backup) but not exported.
seealso:
  - module: homelab.longhorn_dr.longhorn_volume_backup
  - module: homelab.longhorn_dr.longhorn_system_backup
  - name: Longhorn system backup contents
    description: What Longhorn's own system backup holds, which this export complements.
    link: https://longhorn.io/docs/1.10.2/advanced-resources/system-backup-restore/backup-longhorn-system/
"""

EXAMPLES = r"""
- name: Export the cluster state next to the playbook run
  homelab.longhorn_dr.longhorn_cluster_state:
    kubeconfig: ~/.kube/config
    dest: /srv/dr/cluster-state
  register: cluster_state

- name: Show which PVC each volume belongs to and its last backup
  ansible.builtin.debug:
    msg: "{{ item.pvc_namespace }}/{{ item.pvc_name }} -> {{ item.volume }} -> {{ item.last_backup.name | default('no backup') }}"
  loop: "{{ cluster_state.manifest.volumes }}"

- name: Export once a day at most, and keep a copy in the bucket outside the backupstore
  homelab.longhorn_dr.longhorn_cluster_state:
    kubeconfig: ~/.kube/config
    dest: /srv/dr/cluster-state
    max_age: 24h
    upload: true
    endpoint_url: https://minio.example.com:9000
    access_key: "{{ lookup('ansible.builtin.env', 'AWS_ACCESS_KEY_ID') }}"
    secret_key: "{{ lookup('ansible.builtin.env', 'AWS_SECRET_ACCESS_KEY') }}"
    bucket: longhorn-backups
    upload_prefix: cluster-state/

- name: In a fresh container (AWX), get the newest export from the bucket, checked file by file
  homelab.longhorn_dr.longhorn_cluster_state:
    state: fetched
    dest: /tmp/cluster-state
    endpoint_url: https://minio.example.com:9000
    access_key: "{{ lookup('ansible.builtin.env', 'AWS_ACCESS_KEY_ID') }}"
    secret_key: "{{ lookup('ansible.builtin.env', 'AWS_SECRET_ACCESS_KEY') }}"
    bucket: longhorn-backups
    upload_prefix: cluster-state/
  register: fetched

- name: Record an application baseline with the export
  homelab.longhorn_dr.longhorn_cluster_state:
    dest: /srv/dr/cluster-state
    baselines:
      - name: app-rows
        namespace: apps
        pod: app-5d8f7c9b6-x2x9q
        container: app
        command: sqlite3 /data/app.db 'select count(*) from t'
        stdout: "1000\n"
        stderr: ""
        rc: 0
"""

RETURN = r"""
dest:
  description: The export directory.
  returned: always
  type: str
  sample: /srv/dr/cluster-state
manifest_path:
  description: Path of the manifest.
  returned: always
  type: str
  sample: /srv/dr/cluster-state/manifest.json
manifest:
  description:
    - The manifest as written (or, in check mode, as it would be written; when nothing changed, the existing one).
    - With O(state=fetched), the manifest of the export fetched (or, in check mode, to be fetched).
    - C(volumes) has one entry per Longhorn volume with C(volume), C(pv_name), C(pvc_namespace), C(pvc_name),
      C(size) (bytes), C(access_modes), C(storage_class), C(number_of_replicas) and C(last_backup)
      (C(name), C(url), C(created_at), or null when the volume has no Completed backup).
  returned: always
  type: dict
  sample:
    format: homelab.longhorn_dr/cluster-state/v1
    exported_at: "2026-11-22T01:23:45Z"
    longhorn_version: v1.10.2
    kubernetes_version: v1.31.0
    files: {"volumes.yaml": {"sha256": "9f2c...", "objects": 1}}
    volumes:
      - volume: pvc-9a0ff33c-caa6-4cb2-9763-46822ccf7b83
        pv_name: pvc-9a0ff33c-caa6-4cb2-9763-46822ccf7b83
        pvc_namespace: apps
        pvc_name: app-data
        size: 67108864
        access_modes: [ReadWriteOnce]
        storage_class: longhorn
        number_of_replicas: 3
        last_backup:
          name: backup-589392e6a77d4db9
          url: s3://longhorn-backups@us-east-1/?backup=backup-589392e6a77d4db9&volume=pvc-9a0ff33c-caa6-4cb2-9763-46822ccf7b83
          created_at: "2026-11-22T01:41:46Z"
    baselines: []
files:
  description:
    - The exported files (not the manifest), each with its path, SHA-256 and number of objects.
    - With O(state=fetched), the files of the fetched export in O(dest), with the SHA-256 the manifest records.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/srv/dr/cluster-state/volumes.yaml", "sha256": "9f2c...", "objects": 1}]
uploaded:
  description:
    - Keys put into the bucket by this run, the manifest last; in check mode the keys that would be put.
    - Empty without O(upload), or when the bucket already has the reused export, and with O(state=fetched).
  returned: always
  type: list
  elements: str
  sample: [cluster-state/20261122T012345Z/volumes.yaml, cluster-state/20261122T012345Z/manifest.json]
fetched:
  description:
    - With O(state=fetched), the keys downloaded into O(dest), the manifest last; in check mode the keys that would be.
    - Empty when O(dest) already held that export, and with O(state=present).
  returned: always
  type: list
  elements: str
  sample: [cluster-state/20261122T012345Z/volumes.yaml, cluster-state/20261122T012345Z/manifest.json]
source:
  description: With O(state=fetched), where the export was found, as C(s3://<bucket>/<upload_prefix><export time>/).
  returned: when O(state=fetched)
  type: str
  sample: s3://longhorn-backups/cluster-state/20261122T012345Z/
skipped_exports:
  description:
    - With O(state=fetched), the export folders newer than the fetched one that have no C(manifest.json) (uploads that
      did not finish), newest first.
  returned: when O(state=fetched)
  type: list
  elements: str
  sample: [20261122T020000Z]
unchanged_reason:
  description: Why the existing export was kept, empty when a new one was written.
  returned: always
  type: str
  sample: identical content exported at 2026-11-22T01:23:45Z, younger than max_age
"""

import datetime
import json
import os
import tempfile
import traceback

try:
    import yaml
    HAS_YAML = True
except ImportError:
    HAS_YAML = False

try:
    from kubernetes.client import VersionApi
except ImportError:
    VersionApi = None

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state as cs
from ansible_collections.homelab.longhorn_dr.plugins.module_utils import _cluster_state_fetch as fetch
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._backupstore import backupstore_root
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._k8s import (
    K8sAccess,
    LonghornError,
    auth_argument_spec,
    new_module,
    unknown_namespace,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._longhorn import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    InvalidValue,
    parse_duration,
    uses_backup_target_settings,
)
from ansible_collections.homelab.longhorn_dr.plugins.module_utils._s3 import (
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    S3_CONNECTION_ARG_SPEC,
    S3Error,
    call_with_retry,
    classify,
    s3_client,
)

# kind -> (apiVersion, namespaced in Longhorn's namespace)
KINDS = (
    ("PersistentVolumeClaim", "v1", False),
    ("PersistentVolume", "v1", False),
    ("StorageClass", "storage.k8s.io/v1", False),
    ("Volume", API_VERSION, True),
    ("RecurringJob", API_VERSION, True),
    ("BackupTarget", API_VERSION, True),
    ("Backup", API_VERSION, True),
    ("Setting", API_VERSION, True),
)
CONTENT_TYPES = {".yaml": "application/yaml", ".json": "application/json"}


def argument_spec():
    s3 = {key: dict(value) for key, value in S3_CONNECTION_ARG_SPEC.items() if key != "validate_certs"}
    s3["endpoint_url"]["required"] = False
    s3["bucket"]["required"] = False
    # The access key is no secret, but this module's results are shown without no_log on the task: keep it out.
    s3["access_key"]["no_log"] = True
    return auth_argument_spec(
        state=dict(type="str", choices=["present", "fetched"], default="present"),
        namespace=dict(type="str", default=DEFAULT_NAMESPACE),
        dest=dict(type="path", required=True),
        baselines=dict(type="list", elements="dict", default=[]),
        max_age=dict(type="str"),
        upload=dict(type="bool", default=False),
        upload_prefix=dict(type="str", default="cluster-state/"),
        s3_validate_certs=dict(type="bool", default=True),
        **s3
    )


def kubernetes_version(access):
    """``gitVersion`` from the API's /version, else from kubernetes.core's discovery cache, else ''."""
    dynamic = access.client.client
    if VersionApi is not None:
        try:
            return VersionApi(dynamic.client).get_code().git_version or ""
        except Exception:  # pylint: disable=broad-except
            pass
    try:
        return dynamic.version["kubernetes"]["gitVersion"] or ""
    except Exception:  # pylint: disable=broad-except
        return ""


def read_cluster(access, namespace):
    """One list request per kind."""
    return {kind: access.list(kind, api_version, namespace=namespace if namespaced else None) for kind, api_version, namespaced in KINDS}


def read_file(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LonghornError("Failed to read %s: %s" % (path, exc.strerror or exc)) from None


def read_existing(dest):
    """``(manifest or None, whether every file it lists is on disk with its sha256)``."""
    data = read_file(os.path.join(dest, cs.MANIFEST_NAME))
    if data is None:
        return None, False
    try:
        manifest = json.loads(data.decode("utf-8"))
    except ValueError:
        return None, False
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None, False
    for name, info in manifest["files"].items():
        content = read_file(os.path.join(dest, os.path.basename(name)))
        if content is None or not isinstance(info, dict) or cs.sha256_hex(content) != info.get("sha256"):
            return manifest, False
    return manifest, True


def write_atomically(path, data):
    """Write to a temporary file in the same directory, then rename: readers see the old or the new file, never half."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise LonghornError("Failed to write %s: %s" % (path, exc.strerror or exc)) from None


def text(data):
    return "" if data is None else data.decode("utf-8", errors="replace")


def file_diffs(dest, planned, obsolete):
    """The files of ``planned`` whose content differs from what ``dest`` holds, and the diff entries for them and for the
    ``obsolete`` files to remove: ``(changes, diffs)``."""
    changes, diffs = [], []
    for name, data in planned:
        path = os.path.join(dest, name)
        before = read_file(path)
        if before != data:
            changes.append((path, data))
            diffs.append({"before_header": path, "after_header": path, "before": text(before), "after": text(data)})
    for name in obsolete:
        path = os.path.join(dest, name)
        diffs.append({"before_header": path, "after_header": "%s (removed)" % path, "before": text(read_file(path)), "after": ""})
    return changes, diffs


def s3_params(params):
    s3 = {key: params.get(key) for key in S3_CONNECTION_ARG_SPEC}
    s3["validate_certs"] = params["s3_validate_certs"]
    return s3


class Exporter:
    """read -> build -> compare with the export on disk -> write (files, then manifest) -> upload."""

    def __init__(self, module, access, s3_factory=None, now=None, k8s_version=None):
        self.module = module
        self.params = module.params
        self.access = access
        self.dest = self.params["dest"]
        self.s3_factory = s3_factory or (lambda: s3_client(s3_params(self.params)))
        self.now = now or datetime.datetime.now(datetime.timezone.utc)
        self.k8s_version = k8s_version

    def options(self):
        max_age = None
        if self.params["max_age"] is not None:
            try:
                max_age = parse_duration(self.params["max_age"], option="max_age")
            except InvalidValue:
                raise LonghornError("invalid max_age %r: use seconds or a Go duration such as 1h or 24h0m0s" % self.params["max_age"]) from None
        try:
            baselines = cs.check_baselines(self.params["baselines"])
            prefix = None
            if self.params["upload"]:
                prefix = cs.check_upload_prefix(self.params["upload_prefix"], backupstore_root(self.params["prefix"]))
        except cs.ExportError as exc:
            raise LonghornError(str(exc)) from None
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise LonghornError("dest: %s exists and is not a directory; give a directory (it is created when missing)" % self.dest)
        return max_age, baselines, prefix

    def build(self, baselines):
        cluster = read_cluster(self.access, self.params["namespace"])
        if not any(cluster[kind] for kind, _api_version, namespaced in KINDS if namespaced):
            # Longhorn's namespace always has Settings: nothing at all there may be a namespace that does not exist.
            unknown = unknown_namespace(self.access, self.params["namespace"])
            if unknown:
                raise unknown
        longhorn_version = cs.setting_value(cluster["Setting"], cs.VERSION_SETTING)
        legacy = bool(longhorn_version) and uses_backup_target_settings(longhorn_version)
        contents = cs.build_files(cluster, yaml.safe_dump, legacy=legacy)
        infos = {name: {"sha256": cs.sha256_hex(data), "objects": count} for name, (data, count) in contents.items()}
        volumes = cs.volume_mapping(cluster["Volume"], cluster["PersistentVolume"], cluster["PersistentVolumeClaim"], cluster["Backup"])
        k8s_version = self.k8s_version if self.k8s_version is not None else kubernetes_version(self.access)
        manifest = cs.build_manifest(cs.format_time(self.now), longhorn_version, k8s_version, infos, volumes, baselines)
        return {name: data for name, (data, _count) in contents.items()}, manifest

    def run(self):
        max_age, baselines, prefix = self.options()
        contents, fresh = self.build(baselines)
        existing, files_ok = read_existing(self.dest)
        reason = cs.reuse_reason(existing, files_ok, fresh, self.now, max_age)
        result = {"dest": self.dest, "manifest_path": os.path.join(self.dest, cs.MANIFEST_NAME), "uploaded": [],
                  "unchanged_reason": reason or "", "changed": False}
        if reason:
            manifest = existing
            contents = {name: read_file(os.path.join(self.dest, name)) for name in manifest["files"]}
        else:
            manifest = fresh
            result["changed"] = True
            self.write(contents, manifest, result)
        result["manifest"] = manifest
        result["files"] = [{"path": os.path.join(self.dest, name), "sha256": info["sha256"], "objects": info["objects"]}
                           for name, info in sorted(manifest["files"].items())]
        if prefix is not None:
            result["uploaded"] = self.upload(prefix, contents, manifest, reused=bool(reason))
            result["changed"] = result["changed"] or bool(result["uploaded"])
        result["fetched"] = []
        return result

    def write(self, contents, manifest, result):
        manifest_data = cs.dump_manifest(manifest)
        planned = [(name, contents[name]) for name in sorted(contents)] + [(cs.MANIFEST_NAME, manifest_data)]
        obsolete = [name for name in cs.EXPORT_FILES if name not in contents and os.path.exists(os.path.join(self.dest, name))]
        changes, diffs = file_diffs(self.dest, planned, obsolete)
        if self.module._diff:
            result["diff"] = diffs
        if self.module.check_mode:
            return
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:
            raise LonghornError("Failed to create dest %s: %s" % (self.dest, exc.strerror or exc)) from None
        # The manifest is the last entry: it only ever names files that are already written.
        for path, data in changes:
            write_atomically(path, data)
        # Files the new manifest no longer names go only after it is written.
        for name in obsolete:
            try:
                os.unlink(os.path.join(self.dest, name))
            except OSError as exc:
                raise LonghornError("Failed to remove %s: %s" % (name, exc.strerror or exc)) from None

    def upload(self, prefix, contents, manifest, reused):
        manifest_data = cs.dump_manifest(manifest)
        keys = cs.upload_keys(prefix, manifest["exported_at"], sorted(contents))
        bucket = self.params["bucket"]
        try:
            client = self.s3_factory()
        except ValueError as exc:
            raise S3Error("Invalid S3 connection options: %s" % exc, code="InvalidEndpoint") from None
        manifest_key = keys[-1][1]
        if reused:
            try:
                head = call_with_retry(client.head_object, Bucket=bucket, Key=manifest_key)
                if (head.get("Metadata") or {}).get("sha256") == cs.sha256_hex(manifest_data):
                    return []
            except Exception as exc:  # pylint: disable=broad-except
                error = classify(exc, "read s3://%s/%s" % (bucket, manifest_key))
                if error.kind != "missing":
                    raise error from None
        if self.module.check_mode:
            return [key for _name, key in keys]
        uploaded = []
        for name, key in keys:
            data = manifest_data if name == cs.MANIFEST_NAME else contents[name]
            try:
                call_with_retry(client.put_object, Bucket=bucket, Key=key, Body=data,
                                ContentType=CONTENT_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"),
                                Metadata={"sha256": cs.sha256_hex(data)})
            except Exception as exc:  # pylint: disable=broad-except
                raise classify(exc, "upload s3://%s/%s" % (bucket, key)) from None
            uploaded.append(key)
        return uploaded


class Fetcher:
    """state=fetched: find the newest complete export in the bucket -> download and verify every file -> write.

    Nothing is written before every file matched the manifest; then the old manifest goes first and the new one comes
    last, so that dest never holds a manifest naming files that are not its own.
    """

    def __init__(self, module, s3_factory=None):
        self.module = module
        self.params = module.params
        self.dest = self.params["dest"]
        self.bucket = self.params["bucket"]
        self.s3_factory = s3_factory or (lambda: s3_client(s3_params(self.params)))

    def options(self):
        refused = ["%s=%r" % (name, self.params[name]) for name in ("upload", "max_age", "baselines") if self.params[name]]
        if refused:
            raise LonghornError("%s only apply to state=present, not to state=fetched; leave them unset" % ", ".join(refused))
        if ".." in (self.params["upload_prefix"] or "").split("/"):
            raise LonghornError("upload_prefix %r must not contain '..'; give a key prefix such as cluster-state/" % self.params["upload_prefix"])
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise LonghornError("dest: %s exists and is not a directory; give a directory (it is created when missing)" % self.dest)
        return cs.normalize_upload_prefix(self.params["upload_prefix"])

    def run(self):
        prefix = self.options()
        try:
            client = self.s3_factory()
        except ValueError as exc:
            raise S3Error("Invalid S3 connection options: %s" % exc, code="InvalidEndpoint") from None
        base, manifest, manifest_data, skipped = fetch.locate(client, self.bucket, prefix)
        result = {"dest": self.dest, "manifest_path": os.path.join(self.dest, cs.MANIFEST_NAME), "manifest": manifest,
                  "files": [{"path": os.path.join(self.dest, name), "sha256": info["sha256"], "objects": info.get("objects")}
                            for name, info in sorted(manifest["files"].items())],
                  "uploaded": [], "fetched": [], "source": "s3://%s/%s" % (self.bucket, base), "skipped_exports": skipped,
                  "unchanged_reason": "", "changed": False}
        existing, files_ok = read_existing(self.dest)
        if fetch.same_export(existing, files_ok, manifest):
            result["unchanged_reason"] = "%s already holds the export %s, every file matching its sha256" % (self.dest, result["source"])
            return result
        result["changed"] = True
        names = sorted(manifest["files"])
        keys = [base + name for name in names] + [base + cs.MANIFEST_NAME]
        if self.module.check_mode:
            result["fetched"] = keys
            return result
        contents = fetch.download(client, self.bucket, base, manifest)
        self.write(contents, manifest_data, existing, result)
        result["fetched"] = keys
        return result

    def write(self, contents, manifest_data, existing, result):
        planned = [(name, contents[name]) for name in sorted(contents)] + [(cs.MANIFEST_NAME, manifest_data)]
        # Files of the export in dest that the fetched one does not have (settings.yaml of Longhorn <= 1.7).
        old_names = set((existing or {}).get("files") or {}) | set(cs.EXPORT_FILES)
        obsolete = sorted(name for name in old_names if name not in contents and fetch.FILE_NAME.match(name)
                          and os.path.isfile(os.path.join(self.dest, name)))
        diffs = file_diffs(self.dest, planned, obsolete)[1]
        if self.module._diff:
            result["diff"] = diffs
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:
            raise LonghornError("Failed to create dest %s: %s" % (self.dest, exc.strerror or exc)) from None
        manifest_path = os.path.join(self.dest, cs.MANIFEST_NAME)
        for path in [manifest_path] + [os.path.join(self.dest, name) for name in obsolete]:
            try:
                if os.path.exists(path):
                    os.unlink(path)
            except OSError as exc:
                raise LonghornError("Failed to remove %s: %s" % (path, exc.strerror or exc)) from None
        # The manifest is the last entry: it only ever names files that are already written.
        for name, data in planned:
            write_atomically(os.path.join(self.dest, name), data)


def main():
    module = new_module(argument_spec(), supports_check_mode=True,
                        required_if=[("upload", True, ("endpoint_url", "bucket")), ("state", "fetched", ("endpoint_url", "bucket"))])
    fetching = module.params["state"] == "fetched"
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    if (module.params["upload"] or fetching) and not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=BOTO3_IMPORT_ERROR)
    try:
        if fetching:
            result = Fetcher(module).run()
        else:
            result = Exporter(module, K8sAccess(module)).run()
    except fetch.FetchError as exc:
        module.fail_json(msg=str(exc))
    except LonghornError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except S3Error as exc:
        module.fail_json(msg=str(exc), error_code=exc.code, exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
