# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The disaster-recovery drill on the lab, told as a story (``make demo``).

Brings up the lab, configures backups, deploys three apps, shows the pre-teardown gate refusing,
backs everything up, wipes the cluster, restores it with ``restore_cluster``, redeploys the apps and
verifies the data against the baselines taken at backup time. Each step runs one of the collection's
playbooks exactly as a user would (credentials in the environment, as AWX injects them); the
playbooks' full output goes to log files, and the story prints what each step proved.

    python -m demo.drill [--method auto|volumes|system_backup] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO_PLAYBOOKS = REPO_ROOT / 'demo' / 'playbooks'
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / 'ansible-playbook'

# Baselines recorded with the cluster-state export and compared by verify-cluster after the restore:
# the row count, and a checksum of every file on every volume (byte-identical content).
CHECKSUMS = "sh -c 'cd /data && find . -type f | sort | xargs sha256sum'"
BASELINES = [
    {'name': 'db-rows', 'namespace': 'shop', 'label_selector': 'app=db',
     'command': "python3 -c \"import sqlite3; print(sqlite3.connect('/data/app.db').execute('select count(*) from test_data').fetchone()[0])\""},
    {'name': 'db-files', 'namespace': 'shop', 'label_selector': 'app=db', 'command': CHECKSUMS},
    {'name': 'web-files', 'namespace': 'shop', 'label_selector': 'app=web', 'command': CHECKSUMS},
    {'name': 'prom-files', 'namespace': 'monitoring', 'label_selector': 'app=prom', 'command': CHECKSUMS},
]
WORKLOADS = [
    {'kind': 'StatefulSet', 'namespace': 'shop', 'name': 'db'},
    {'kind': 'Deployment', 'namespace': 'shop', 'name': 'web'},
    {'kind': 'Deployment', 'namespace': 'monitoring', 'name': 'prom'},
]


@dataclasses.dataclass(frozen=True)
class Installation:
    """Where Ansible and the collection come from, and how the playbooks reach the cluster.

    The default is this checkout with ``.venv``. The installed-collection test passes the built tarball,
    installed into a clean collections path, with the oldest supported ansible-core and libraries, and
    connects as AWX does: a bearer token (the Kubernetes credential) and the cluster state from the bucket.
    """

    ansible_playbook: pathlib.Path = ANSIBLE_PLAYBOOK
    python: str = sys.executable
    collections_path: pathlib.Path = REPO_ROOT / '.collections'
    ansible_config: pathlib.Path | None = REPO_ROOT / 'ansible.cfg'
    # 'kubeconfig' (K8S_AUTH_KUBECONFIG) or 'token' (K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_SSL_CA_CERT)
    kubernetes_auth: str = 'kubeconfig'
    # restore-cluster and verify-cluster read the cluster-state export from the bucket, not a local directory
    cluster_state_from_bucket: bool = False


class DrillFailed(Exception):
    """A step did not end as the story says it must."""


class Story:
    """Prints the drill as numbered steps with a few facts each, and keeps the times."""

    def __init__(self, out=sys.stdout):
        self.out = out
        self.step = 0
        self.started = time.monotonic()

    def chapter(self, title):
        self.step += 1
        self.out.write('\n%2d. %s\n' % (self.step, title))
        self.out.flush()

    def fact(self, text):
        self.out.write('      %s\n' % text)
        self.out.flush()


class Drill:
    def __init__(self, workdir, method, story, installation=None):
        self.workdir = pathlib.Path(workdir)
        self.method = method
        self.story = story
        self.installation = installation or Installation()
        self.logs = self.workdir / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.workdir / 'cluster-state'
        self.lab = None
        self.runs = 0

    # ---- plumbing ---------------------------------------------------------------------------
    def environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(('K8S_AUTH_', 'AWS_', 'ANSIBLE_', 'KUBECONFIG'))}
        tmp = self.workdir / 'tmp'
        tmp.mkdir(exist_ok=True)
        installation = self.installation
        env.update(
            PATH='%s%s%s' % (installation.ansible_playbook.parent, os.pathsep, env.get('PATH', '')),
            ANSIBLE_COLLECTIONS_PATH=str(installation.collections_path),
            # Only the collections path counts: not ~/.ansible, not a collection importable from sys.path.
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
            ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
            ANSIBLE_NOCOLOR='1',
            ANSIBLE_LOCAL_TEMP=str(tmp / 'local'),
            ANSIBLE_REMOTE_TEMP=str(tmp / 'remote'),
            TMPDIR=str(tmp),
            # What AWX credentials inject: the playbooks read only these.
            AWS_ENDPOINT_URL=self.lab.s3_endpoint,
            AWS_ACCESS_KEY_ID=self.lab.access_key,
            AWS_SECRET_ACCESS_KEY=self.lab.secret_key,
        )
        if installation.ansible_config is not None:
            env['ANSIBLE_CONFIG'] = str(installation.ansible_config)
        if installation.kubernetes_auth == 'token':
            env.update(self.token_environment())
        else:
            env['K8S_AUTH_KUBECONFIG'] = str(self.lab.kubeconfig)
        return env

    def token_environment(self):
        """What AWX's "OpenShift or Kubernetes API Bearer Token" credential injects, taken from the lab's kubeconfig."""
        import yaml

        kubeconfig = yaml.safe_load(pathlib.Path(self.lab.kubeconfig).read_text(encoding='utf-8'))
        ca_file = self.workdir / 'kubernetes-ca.crt'
        ca_file.write_bytes(base64.b64decode(kubeconfig['clusters'][0]['cluster']['certificate-authority-data']))
        return {
            'K8S_AUTH_HOST': self.lab.api_server,
            'K8S_AUTH_API_KEY': kubeconfig['users'][0]['user']['token'],
            'K8S_AUTH_SSL_CA_CERT': str(ca_file),
            'K8S_AUTH_VERIFY_SSL': 'true',
        }

    def playbook(self, name, extra_vars=None, expect_failure=False):
        """Run a collection playbook (``homelab.longhorn_dr.<name>``) or a demo one; returns its JSON output."""
        self.runs += 1
        target = str(DEMO_PLAYBOOKS / (name + '.yml')) if (DEMO_PLAYBOOKS / (name + '.yml')).exists() else 'homelab.longhorn_dr.' + name
        vars_file = self.workdir / ('vars-%02d.json' % self.runs)
        vars_file.write_text(json.dumps(extra_vars or {}), encoding='utf-8')
        log = self.logs / ('%02d-%s.json' % (self.runs, name))
        command = [str(self.installation.ansible_playbook), '-i', 'localhost,', '-e', 'ansible_connection=local',
                   '-e', 'ansible_python_interpreter=%s' % self.installation.python, '-e', '@%s' % vars_file, target]
        completed = subprocess.run(command, cwd=self.workdir, env=self.environment(), capture_output=True, text=True, check=False)
        log.write_text(completed.stdout + ('\n--- stderr ---\n' + completed.stderr if completed.stderr else ''), encoding='utf-8')
        try:
            output = json.loads(completed.stdout)
        except ValueError:
            output = {}
        failed = completed.returncode != 0
        if failed != expect_failure:
            raise DrillFailed('%s %s (see %s): %s' % (name, 'failed' if failed else 'passed, but it had to fail', log,
                                                      first_failure(output) or completed.stderr.strip()[-500:]))
        return output

    # ---- the story --------------------------------------------------------------------------
    def run(self):
        from tests.lab.lab import Lab

        # The lab's own log lines go to a file: the story is what the terminal shows.
        logging.basicConfig(filename=str(self.workdir / 'lab.log'), level=logging.INFO, force=True,
                            format='%(asctime)s %(name)s %(levelname)s %(message)s')

        story = self.story
        story.chapter('Bring up the lab: a Kubernetes API, Longhorn %s and an S3 bucket' % '1.10')
        self.lab = Lab(state_dir=str(self.workdir / 'lab'))
        self.lab.start()
        story.fact('API %s, bucket s3://%s at %s' % (self.lab.api_server, self.lab.bucket, self.lab.s3_endpoint))

        story.chapter('Configure backups (make configure-backups)')
        out = self.playbook('configure_backups', {'backup_target_url': self.lab.backup_target_url})
        jobs = task(out, 'Apply the recurring jobs') and sorted(j['metadata']['name'] for j in self.lab.store.list('recurringjobs', 'longhorn-system')[0])
        story.fact('BackupTarget default -> %s, available' % self.lab.backup_target_url)
        story.fact('recurring jobs: %s' % ', '.join(jobs or []))

        story.chapter('Deploy the apps: a database with 1000 rows, uploads, metrics; two namespaces')
        self.playbook('deploy_apps', {'demo_seed': True})
        claims = self.claims()
        for claim, volume in sorted(claims.items()):
            story.fact('%-22s -> Longhorn volume %s' % (claim, volume))

        story.chapter('The gate before any backup (make preflight): it must refuse')
        out = self.playbook('preflight', {'backup_gate_cluster_state_prefix': 'cluster-state/'}, expect_failure=True)
        story.fact('refused: %s' % shorten(first_failure(out), 300))

        story.chapter('Back up everything (make backup-now, make backup-cluster-state)')
        out = self.playbook('backup_now', {'backup_now_backup_mode': 'full'})
        backups = find_key(out, 'backups') or []
        story.fact('%d volume backups Completed, system backup %s Ready' % (
            len([b for b in backups if b.get('state') == 'Completed']), find_key(out, 'name') or '?'))
        out = self.playbook('backup_cluster_state', {'cluster_state_dest': str(self.state_dir), 'cluster_state_baselines': BASELINES,
                                                     'cluster_state_upload': True, 'cluster_state_bucket': self.lab.bucket})
        manifest = json.loads((self.state_dir / 'manifest.json').read_text(encoding='utf-8'))
        rows = next(b for b in manifest['baselines'] if b['name'] == 'db-rows')['stdout'].strip()
        story.fact('cluster state exported: %d files, %d volumes mapped, baseline test_data rows = %s'
                   % (len(manifest['files']), len(manifest['volumes']), rows))

        story.chapter('The gate again: every volume is protected now')
        self.playbook('preflight')
        story.fact('passed: fresh backups of every volume in the bucket, a Ready system backup, a fresh export')

        story.chapter('Disaster: tear the cluster down (lab wipe-cluster; the bucket survives)')
        self.lab.wipe_cluster()
        if self.installation.cluster_state_from_bucket:
            # As in AWX, where each job runs in a fresh container: the export survives only in the bucket.
            shutil.rmtree(self.state_dir)
        pvcs = self.lab.store.list('persistentvolumeclaims')[0]
        story.fact('PVCs left: %d, Longhorn volumes left: %d, Secrets with credentials: none'
                   % (len(pvcs), len(self.lab.store.list('volumes', 'longhorn-system')[0])))

        story.chapter('Restore the cluster (make restore-cluster, method %s)' % self.method)
        report_file = self.workdir / 'restore-report.json'
        self.playbook('restore_cluster', dict(self.cluster_state_source('restore_cluster'), **{
            'restore_cluster_bucket': self.lab.bucket, 'restore_cluster_region': self.lab.region, 'restore_cluster_method': self.method,
            'restore_cluster_report_file': str(report_file), 'restore_cluster_plan_file': str(self.workdir / 'restore-plan.json')}))
        report = json.loads(report_file.read_text(encoding='utf-8'))
        story.fact('%d PVCs back under their original names by %s, RTO %.1fs'
                   % (len(report['volumes']), report['method'], report['rto_seconds']))
        restored = self.claims()
        if restored != claims:
            raise DrillFailed('claims and volumes differ after the restore: before %s, after %s' % (claims, restored))

        story.chapter('Redeploy the apps (make apps-deploy-all): they find their data')
        self.playbook('deploy_apps')
        story.fact('db, web and prom ready on the restored claims')

        story.chapter('Verify against the baselines (make verify-cluster)')
        verify_file = self.workdir / 'verify-report.json'
        self.playbook('verify_cluster', dict(self.cluster_state_source('verify_restore'), **{
            'verify_restore_workloads': WORKLOADS, 'verify_restore_report_file': str(verify_file)}))
        verify = json.loads(verify_file.read_text(encoding='utf-8'))
        story.fact(verify_summary(verify))

        story.chapter('Report')
        for entry in report['volumes']:
            story.fact('%-22s backup %s, RPO %ss' % (entry['pvc'], entry['backup'], entry['rpo_seconds']))
        story.fact('RTO (restore-cluster): %.1fs; drill: %.0fs' % (report['rto_seconds'], time.monotonic() - story.started))
        story.fact('checked: PVCs bound to their restored volumes, workloads ready, %s rows, byte-identical files' % rows)
        return {'restore': report, 'verify': verify, 'claims': restored}

    def cluster_state_source(self, role):
        """The extra vars that point restore_cluster or verify_restore at the cluster-state export."""
        if not self.installation.cluster_state_from_bucket:
            return {role + '_cluster_state_dir': str(self.state_dir)}
        source = {role + '_cluster_state_source': 'bucket'}
        if role == 'verify_restore':
            source.update(verify_restore_bucket=self.lab.bucket, verify_restore_region=self.lab.region)
        return source

    def claims(self):
        return {'%s/%s' % (c['metadata']['namespace'], c['metadata']['name']): c['spec'].get('volumeName')
                for c in self.lab.store.list('persistentvolumeclaims')[0]}

    def stop(self):
        if self.lab is not None:
            self.lab.stop()


def task(output, name):
    """The localhost result of the last task whose name ends with ``name``."""
    found = None
    for play in output.get('plays', []):
        for item in play.get('tasks', []):
            if item['task']['name'].endswith(name):
                found = item['hosts'].get('localhost')
    return found


def find_key(output, key):
    """The first value of ``key`` in any task result (newest last wins)."""
    value = None
    for play in output.get('plays', []):
        for item in play.get('tasks', []):
            result = item['hosts'].get('localhost') or {}
            if key in result:
                value = result[key]
    return value


def first_failure(output):
    for play in output.get('plays', []):
        for item in play.get('tasks', []):
            result = item['hosts'].get('localhost') or {}
            if result.get('failed') and not result.get('ignore_errors'):
                return result.get('msg') or json.dumps(result)[:500]
    return ''


def shorten(text, limit):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def verify_summary(verify):
    summary = verify.get('summary')
    if isinstance(summary, str):
        return summary
    return json.dumps(summary, sort_keys=True) if summary else 'report written'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--method', choices=['auto', 'volumes', 'system_backup'], default='auto')
    parser.add_argument('--workdir', help='where logs, the export and the reports go (default: a new temporary directory)')
    parser.add_argument('--keep', action='store_true', help='keep the work directory')
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix='longhorn-dr-drill-'))
    story = Story()
    print('Disaster-recovery drill: back up, lose the cluster, restore, prove the data came back.')
    print('Playbook logs: %s' % (workdir / 'logs'))
    drill = Drill(workdir, args.method, story)
    try:
        drill.run()
    except DrillFailed as exc:
        print('\nDRILL FAILED: %s' % exc, file=sys.stderr)
        return 1
    finally:
        drill.stop()
        if not args.keep and not args.workdir and sys.exc_info()[0] is None:
            shutil.rmtree(workdir / 'lab', ignore_errors=True)
    print('\nDrill passed: nothing was lost.')
    return 0


if __name__ == '__main__':
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())
