# homelab.longhorn_dr developer entry points.
#   make          build the environment (.venv, vendored collections)
#   make test     everything CI runs: lint, sanity, unit + integration, molecule
#   make help     list the targets
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := all
MAKEFLAGS += --no-builtin-rules
comma := ,

PYTHON ?= python3.11
PYTHON_VERSION := 3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
VPY := $(BIN)/python
COLLECTIONS := .collections
BUILD := .build

# Hash-keyed stamps: a changed requirement file means a new stamp name and a
# re-install, an unchanged one means `make` does nothing.
REQUIREMENTS := requirements/runtime.txt requirements/test.txt
VENV_STAMP := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) | sha256sum | cut -c1-16)
BUNDLE := requirements/ansible-bundle.txt
# kubernetes.core is our dependency; ansible.posix only gives the tests its json callback;
# awx.awx lets lint and syntax checks resolve extensions/awx (the AWX setup playbook is not run here).
VENDORED := kubernetes.core==6.2.0 ansible.posix==2.1.0 awx.awx==24.6.1
VENDOR_STAMP := $(COLLECTIONS)/.vendored-$(shell (cat $(BUNDLE); echo $(VENDORED)) | sha256sum | cut -c1-16)
SELF_LINK := $(COLLECTIONS)/ansible_collections/homelab/longhorn_dr
# The oldest versions the collection claims (meta/ee-requirements.txt, requires_ansible): the
# installed-collection test runs the built tarball with them.
MIN_VENV := .venv-min
MIN_INPUTS := meta/ee-requirements.txt meta/runtime.yml scripts/min_requirements.py
MIN_STAMP := $(MIN_VENV)/.installed-$(shell (cat $(MIN_INPUTS); echo $(VENDORED)) | sha256sum | cut -c1-16)
COLLECTION_VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
EE_DIR := $(BUILD)/ee

export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Keep compiled byte code. Some images set PYTHONDONTWRITEBYTECODE; then every module run
# compiles the kubernetes client again (1.4 s of CPU per kubernetes.core task instead of 0.4 s).
unexport PYTHONDONTWRITEBYTECODE
# Fresh temp dir per make run: kubernetes.core caches API discovery in
# $TMPDIR/k8srcp-*.json, which must not leak from one lab (or run) to the next.
RUN_TMP := $(CURDIR)/$(BUILD)/tmp/run-$(shell date +%Y%m%d-%H%M%S)-$(shell echo $$PPID)

# Integration tests mostly wait on the lab's controllers, so 4 workers on 2 cores pay off
# (measured: 6.5 min instead of 20+ for the whole pytest run).
PYTEST_WORKERS ?= 4

.PHONY: all help venv collections min-venv lab-components peer lint sanity units pytest molecule test changelog build ee-context demo clean distclean

all: $(VENV_STAMP) $(VENDOR_STAMP) $(SELF_LINK) ## Build .venv and vendor the collections (idempotent)

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 14

# pip --no-compile: byte-compiling every installed file (sympy, botocore, ...)
# costs more than compiling, on first import, the part the tests use.
$(VENV_STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python $(PYTHON_VERSION) or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@if [ -x $(VPY) ] && ! $(VPY) -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(PYTHON_VERSION))))'; then \
		echo "$(VENV) is not Python $(PYTHON_VERSION); recreating it"; rm -rf $(VENV); fi
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv' failed (on Debian/Ubuntu: apt-get install python3.11-venv)" >&2; exit 1; }
	$(VPY) -m pip install --quiet --no-compile -r requirements/test.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

$(VENDOR_STAMP): | $(VENV_STAMP)
	$(VPY) scripts/vendor_collections.py --requirements $(BUNDLE) --dest $(COLLECTIONS) $(addprefix --collection ,$(VENDORED))
	@rm -f $(COLLECTIONS)/.vendored-*
	@touch $@

min-venv: $(MIN_STAMP) ## A venv with the oldest supported ansible-core and libraries (for the installed-collection test)
$(MIN_STAMP): | $(VENDOR_STAMP)
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(VPY) scripts/min_requirements.py > $(MIN_VENV)/requirements.txt
	$(MIN_VENV)/bin/python -m pip install --quiet --no-compile -r $(MIN_VENV)/requirements.txt \
		-r $(COLLECTIONS)/ansible_collections/kubernetes/core/requirements.txt
	@touch $@

# ansible-playbook finds this checkout as homelab.longhorn_dr through this link.
$(SELF_LINK):
	@mkdir -p $(dir $@)
	ln -sfn ../../.. $@

# The lab's upstream programs (kine, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# and the node agent), built from Go source into ~/.cache/longhorn-dr-lab, keyed by version and reused.
lab-components: all ## Build (once) the real Kubernetes components the lab runs; needs Go >= 1.26
	$(VPY) -m tests.lab.control_plane.build

lint: all ## ansible-lint, production profile, offline (.ansible-lint)
	ansible-lint --offline

sanity: all ## ansible-test sanity on a staged copy (no ignore files)
	$(VPY) scripts/seed_ansible_test_pip.py
	$(VPY) scripts/stage_collection.py --dest $(BUILD)/sanity --with-collections $(COLLECTIONS)
	cd $(BUILD)/sanity/ansible_collections/homelab/longhorn_dr && \
		env -u ANSIBLE_CONFIG -u ANSIBLE_COLLECTIONS_PATH \
		ansible-test sanity --venv --python $(PYTHON_VERSION) --color no

units: all ## Unit tests only (tests/unit)
	@mkdir -p $(RUN_TMP)
	rc=0; TMPDIR=$(RUN_TMP) pytest tests/unit || rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "make units: no unit tests collected" >&2; exit 0; fi; exit $$rc

# Exit code 5 (nothing collected) fails here: the smoke test always exists, so it means a broken collection.
# PYTEST_WORKERS=0 runs serially (xdist needs test ids that are the same in every worker).
pytest: all $(MIN_STAMP) lab-components ## Unit and integration tests in one pytest run (integration needs no setup: it starts the lab)
	@mkdir -p $(RUN_TMP)
	TMPDIR=$(RUN_TMP) pytest -n $(PYTEST_WORKERS) --durations=15 tests/unit tests/integration tests/peer

# kubernetes.core's own integration targets against the real control plane (tests/peer/README.md).
# make test runs the quick set; PEER_TARGETS=all runs every target (about 30 minutes on 2 cores).
PEER_TARGETS ?= ci
peer: all lab-components ## kubernetes.core's integration targets against the lab's real control plane (PEER_TARGETS=ci|all|a,b)
	@mkdir -p $(RUN_TMP)
	TMPDIR=$(RUN_TMP) $(VPY) tests/peer/run_kubernetes_core_targets.py --jobs 2 --timeout 600 \
		$(if $(filter all,$(PEER_TARGETS)),,--targets $(PEER_TARGETS)) --json $(RUN_TMP)/peer-kubernetes-core.json

molecule: all ## Molecule scenarios (extensions/molecule) against the lab
	@mkdir -p $(RUN_TMP)
	TMPDIR=$(RUN_TMP) molecule test --all

changelog: all ## Lint the changelog fragments
	antsibull-changelog lint

build: all ## Build the collection tarball
	ansible-galaxy collection build --force

# The EE definition expects the tarball beside it (extensions/ee/execution-environment.yml), so both
# are staged in $(EE_DIR)/definition; ansible-builder create needs no network, the image build does.
ee-context: all ## Build context for an execution environment in .build/ee/context (then: podman build -t longhorn-dr-ee .build/ee/context)
	rm -rf $(EE_DIR)
	mkdir -p $(EE_DIR)/definition
	cp extensions/ee/execution-environment.yml extensions/ee/requirements.yml $(EE_DIR)/definition/
	ansible-galaxy collection build --force --output-path $(EE_DIR)
	cp $(EE_DIR)/homelab-longhorn_dr-$(COLLECTION_VERSION).tar.gz $(EE_DIR)/definition/homelab-longhorn_dr.tar.gz
	ansible-builder create --file $(EE_DIR)/definition/execution-environment.yml --context $(EE_DIR)/context --output-filename Containerfile

TEST_STEPS := lint sanity pytest peer molecule
test: ## Everything CI runs, in order; all steps run (FAIL_FAST=1 stops at the first failure), then a timing summary
	@start=$$(date +%s); $(MAKE) --no-print-directory all; \
	failed=""; summary="$$(printf '  %-9s %-7s %4ss' setup passed $$(( $$(date +%s) - start )))\n"; \
	for step in $(TEST_STEPS); do \
		start=$$(date +%s); \
		if $(MAKE) --no-print-directory $$step; then result=passed; else result=FAILED; failed="$$failed $$step"; fi; \
		summary="$$summary$$(printf '  %-9s %-7s %4ss' $$step $$result $$(( $$(date +%s) - start )))\n"; \
		if [ -n "$$failed" ] && [ -n "$(FAIL_FAST)" ]; then break; fi; \
	done; \
	printf "make test summary:\n$$summary"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: all steps passed"

# Connection comes from the environment (K8S_AUTH_KUBECONFIG, K8S_AUTH_CONTEXT, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL: what AWX injects) or from EXTRA_VARS, e.g.
#   make configure-backups EXTRA_VARS=@site-backups.yml   (a Vault-encrypted file works: add ANSIBLE_ARGS=--ask-vault-pass)
.PHONY: configure-backups
configure-backups: all ## Configure the backup target and recurring jobs (EXTRA_VARS=@file.yml, INVENTORY=..., ANSIBLE_ARGS=...)
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.configure_backups

# The disaster-recovery drill on the lab (demo/drill.py): configure backups, deploy apps, gate, back up,
# wipe the cluster, restore it, verify the data. DEMO_METHOD=volumes|system_backup|auto (default auto).
DEMO_METHOD ?= auto
demo: all ## The full disaster-recovery drill on the lab, as a story (DEMO_METHOD=auto|volumes|system_backup)
	$(VPY) -m demo.drill --method $(DEMO_METHOD)

# Connection as for configure-backups: K8S_AUTH_KUBECONFIG / K8S_AUTH_CONTEXT from the environment, or
#   make backup-now EXTRA_VARS='longhorn_dr_kubeconfig=~/.kube/config backup_now_backup_mode=full'
.PHONY: backup-now
backup-now: all ## Back up every Longhorn volume, then a system backup (EXTRA_VARS=..., INVENTORY=..., ANSIBLE_ARGS=...)
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.backup_now

# Export PVCs, PVs, Longhorn volumes, StorageClasses, RecurringJobs and the BackupTarget (no Secret values)
# as YAML plus a manifest, e.g.
#   make backup-cluster-state EXTRA_VARS='cluster_state_dest=./cluster-state'
.PHONY: backup-cluster-state
backup-cluster-state: all ## Export the cluster state before a teardown (EXTRA_VARS=..., INVENTORY=..., ANSIBLE_ARGS=...)
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.backup_cluster_state

# Over plain S3, no cluster needed: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL from the
# environment, or EXTRA_VARS, e.g.  make check-backups EXTRA_VARS='check_backups_bucket=longhorn-backups'
.PHONY: check-backups
check-backups: all ## Report what the bucket holds: volumes, backups, freshness, integrity (EXTRA_VARS=..., ANSIBLE_ARGS=...)
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.check_backups

# The pre-teardown gate: fails unless every volume is recoverable. Run it before `make k3s-teardown`.
.PHONY: preflight
preflight: all ## Fail closed unless every volume has a fresh backup, plus a system backup and a cluster-state export
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.preflight

# After a rebuild (Longhorn installed, no apps yet). S3 credentials from the environment or EXTRA_VARS, e.g.
#   make restore-cluster EXTRA_VARS='restore_cluster_bucket=longhorn-backups restore_cluster_plan_only=true'
.PHONY: restore-cluster
restore-cluster: all ## Restore every Longhorn volume and its PV/PVC after a rebuild, from a plan printed first
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.restore_cluster

# After restore-cluster and apps-deploy-all: claims bound, volumes healthy, workloads ready, baselines, e.g.
#   make verify-cluster EXTRA_VARS='verify_restore_cluster_state_dir=./cluster-state'
.PHONY: verify-cluster
verify-cluster: all ## Verify a restore: claims, volume health, workloads, app checks against the baselines
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.verify_cluster

# Single-app restore; deleting the claim needs restore_app_confirm_delete=true, e.g.
#   make restore-app EXTRA_VARS='restore_app_namespace=shop restore_app_pvcs=[\"uploads\"] restore_app_confirm_delete=true'
.PHONY: restore-app
restore-app: all ## Restore one app's claims from the latest or a named backup (EXTRA_VARS=..., confirm to delete)
	ansible-playbook $(if $(INVENTORY),-i '$(INVENTORY)') $(if $(EXTRA_VARS),-e '$(EXTRA_VARS)') $(ANSIBLE_ARGS) homelab.longhorn_dr.restore_app

clean: ## Remove test output and staged copies (keeps .venv and .collections)
	rm -rf $(BUILD) tests/output .pytest_cache homelab-longhorn_dr-*.tar.gz

distclean: clean ## Remove everything `make` built
	rm -rf $(VENV) $(MIN_VENV) $(COLLECTIONS)

