# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 5, AWX: the data under extensions/awx/ against the roles and playbooks it drives.

No AWX and no lab: the credential types, job templates and surveys are parsed and checked against what the
collection really reads, all of it parsed from the repository (role ``meta/argument_specs.yml`` and
``defaults/main.yml``, the playbooks' ``vars`` and the module options they feed, module DOCUMENTATION):

* every environment variable a credential type injects is read by a role default or a playbook;
* every injected extra var, survey variable and job template extra var is a role option or playbook variable,
  survey choices are a subset of the declared choices and survey types fit the declared types;
* AWX renders injected extra vars and multiple choice answers as strings, so a boolean that arrives that way
  must only be read with ``| bool`` or passed whole to a module option;
* the injectors render (as AWX does, in a Jinja sandbox) into the URL and values the roles expect;
* inputs that feed credentials are ``secret: true``;
* every job template's playbook is a wrapper in extensions/awx/project/ importing an existing playbook;
* configure_awx.yml and the wrappers pass ``ansible-playbook --syntax-check`` with the vendored awx.awx, and every
  awx.awx task of configure_awx.yml passes its module's argument validation.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import jinja2.meta
import jinja2.sandbox
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
AWX = REPO / 'extensions' / 'awx'
PROJECT = AWX / 'project'
CREDENTIAL_TYPE_FILES = sorted((AWX / 'credential_types').glob('*.yml'))
# The job templates issue 5 asks for (make targets), plus backup-cluster-state, which feeds the bucket export.
REQUIRED_PLAYBOOKS = {'configure_backups', 'backup_now', 'preflight', 'restore_cluster', 'verify_cluster', 'backup_cluster_state'}
# Survey defaults deliberately safer than the role default (reviewed): restore-cluster only plans unless told to restore.
SAFER_SURVEY_DEFAULTS = {'restore_cluster_plan_only': 'true'}
# Keys whose values Ansible evaluates as bare Jinja expressions.
BARE_EXPRESSION_KEYS = {'when', 'that', 'failed_when', 'changed_when', 'until'}
ENV_LOOKUP = re.compile(r"""lookup\(\s*['"]ansible\.builtin\.env['"]\s*,\s*['"]([A-Z0-9_]+)['"]""")
# AWX refuses to inject these (awx/main/fields.py validate_env_var_allowed, settings ENV_BLOCKLIST).
AWX_ENV_BLOCKLIST = {'VIRTUAL_ENV', 'PATH', 'PYTHONPATH', 'JOB_ID', 'INVENTORY_ID', 'INVENTORY_SOURCE_ID', 'INVENTORY_UPDATE_ID',
                     'AD_HOC_COMMAND_ID', 'REST_API_URL', 'REST_API_TOKEN', 'MAX_EVENT_RES', 'CALLBACK_QUEUE',
                     'CALLBACK_CONNECTION', 'CACHE', 'JOB_CALLBACK_DEBUG', 'INVENTORY_HOSTVARS', 'AWX_HOST', 'PROJECT_REVISION',
                     'SUPERVISOR_CONFIG_PATH'}
SURVEY_TYPES = {'text', 'textarea', 'password', 'integer', 'float', 'multiplechoice', 'multiselect'}


def _load(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def _credential_types():
    return [(path.name, _load(path)) for path in CREDENTIAL_TYPE_FILES]


def _job_templates():
    return _load(AWX / 'job_templates.yml')['job_templates']


def _module_options(module):
    """Options of one of this collection's modules, from its DOCUMENTATION."""
    source = (REPO / 'plugins' / 'modules' / f'{module}.py').read_text(encoding='utf-8')
    match = re.search(r'^DOCUMENTATION\s*=\s*r?("""|\'\'\')(.*?)\1', source, re.S | re.M)
    return yaml.safe_load(match.group(2)).get('options', {}) if match else {}


def _jinja_var(value):
    """The variable a module option is fed from: "{{ var }}", "{{ var or omit }}", "{{ var | default(omit) }}"."""
    match = re.fullmatch(r'\s*\{\{\s*([a-z_][a-z0-9_]*)\s*(?:or omit|\|\s*default\(omit(?:,\s*true)?\))?\s*\}\}\s*', str(value))
    return match.group(1) if match else None


def _declared():
    """Every public variable: role options (argument specs) and playbook vars, each with its spec and where it is read."""
    declared = {}
    for spec_file in sorted(REPO.glob('roles/*/meta/argument_specs.yml')):
        role = spec_file.parent.parent.name
        options = _load(spec_file)['argument_specs']['main'].get('options', {})
        for name, spec in options.items():
            declared[name] = dict(spec, source=f'roles/{role}/meta/argument_specs.yml', role=role)
    for playbook in sorted(REPO.glob('playbooks/*.yml')):
        for play in _load(playbook):
            play_vars = play.get('vars', {}) or {}
            fed = {}
            for task in play.get('tasks', []) or []:
                for key, args in task.items():
                    if key.startswith('homelab.longhorn_dr.') and isinstance(args, dict):
                        module_options = _module_options(key.rsplit('.', 1)[1])
                        for option, value in args.items():
                            var = _jinja_var(value)
                            if var and option in module_options:
                                fed[var] = module_options[option]
            for name, default in play_vars.items():
                if name in declared:
                    continue
                spec = dict(fed.get(name, {}))
                spec.setdefault('type', {bool: 'bool', int: 'int', list: 'list', dict: 'dict'}.get(type(default), 'str'))
                spec['default'] = default
                declared[name] = dict(spec, source=f'playbooks/{playbook.name}', playbook=playbook.stem)
    return declared


DECLARED = _declared()


def _var_files(spec):
    """Files where a variable is read: its role's tasks/vars/handlers/templates, or its playbook."""
    if 'role' in spec:
        base = REPO / 'roles' / spec['role']
        return sorted(p for sub in ('tasks', 'vars', 'handlers', 'templates') for p in (base / sub).rglob('*') if p.is_file())
    return [REPO / 'playbooks' / f"{spec['playbook']}.yml"]


def _expressions(node, key=None):
    """Jinja expressions in a parsed YAML tree: bare ones under when/that/..., {{ }} and {% %} elsewhere."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _expressions(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from _expressions(child, key)
    elif isinstance(node, str):
        if key in BARE_EXPRESSION_KEYS:
            yield node, False
        whole = re.fullmatch(r'\s*\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}\s*', node)
        for match in re.finditer(r'\{\{(.*?)\}\}|\{%(.*?)%\}', node, re.S):
            yield match.group(1) or match.group(2) or '', bool(whole)


def _raw_bool_uses(var):
    """Places that read var as a truth value without `| bool` (an AWX string "false" would be true there)."""
    bad = []
    pattern = re.compile(r'(?<![\w.])' + re.escape(var) + r'\b(?!\s*\|\s*bool)')
    for path in _var_files(DECLARED[var]):
        if path.suffix in ('.yml', '.yaml'):
            expressions = list(_expressions(_load(path)))
        else:  # a template: all of it is Jinja
            expressions = [(path.read_text(encoding='utf-8'), False)]
        for expression, whole_value in expressions:
            # "{{ var }}" as a whole option value is fine: the module converts "False" itself.
            if not whole_value and pattern.search(expression):
                bad.append(f'{path.relative_to(REPO)}: ... {expression.strip()[:120]}')
    return bad


def _survey_items():
    for template in _job_templates():
        for item in template.get('survey', []) or []:
            yield template['name'], item


def _injected_extra_vars():
    return {name: value for _name, ctype in _credential_types() for name, value in ctype['injectors'].get('extra_vars', {}).items()}


def _bool_string(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- credential types ---------------------------------------------------------------------------------------------

def test_there_is_a_credential_type():
    assert CREDENTIAL_TYPE_FILES, 'no credential type under extensions/awx/credential_types/'


@pytest.mark.parametrize('name,ctype', _credential_types())
def test_credential_type_shape(name, ctype):
    """What AWX validates when the type is created: kind, field types, required ids, file injector keys, env names."""
    assert ctype['kind'] in ('cloud', 'net'), f'{name}: custom credential types must be kind cloud or net'
    fields = ctype['inputs']['fields']
    ids = [field['id'] for field in fields]
    assert len(ids) == len(set(ids)), f'{name}: duplicate input ids {ids}'
    for field in fields:
        assert field.get('type', 'string') in ('string', 'boolean'), f'{name}: {field["id"]} has type {field.get("type")}'
        assert field.get('label'), f'{name}: {field["id"]} has no label'
    assert set(ctype['inputs'].get('required', [])) <= set(ids), f'{name}: required names unknown inputs'
    for key in ctype['injectors'].get('file', {}):
        assert re.fullmatch(r'template(\.[a-z_]+)?', key), f'{name}: file injector key {key}'
    for env in ctype['injectors'].get('env', {}):
        assert not env.startswith('ANSIBLE_') and env not in AWX_ENV_BLOCKLIST, f'{name}: AWX refuses to inject {env}'


@pytest.mark.parametrize('name,ctype', _credential_types())
def test_injectors_only_use_inputs(name, ctype):
    """Every name an injector template uses is an input (or AWX's `tower` namespace for file paths)."""
    ids = {field['id'] for field in ctype['inputs']['fields']}
    env = jinja2.sandbox.ImmutableSandboxedEnvironment()
    for kind, templates in ctype['injectors'].items():
        for key, template in templates.items():
            used = jinja2.meta.find_undeclared_variables(env.parse(template))
            assert used <= ids | {'tower'}, f'{name}: {kind} injector {key} uses {sorted(used - ids)}, not inputs'


@pytest.mark.parametrize('name,ctype', _credential_types())
def test_env_injectors_are_read(name, ctype):
    """Each injected environment variable is read by some role default, playbook or module option fallback."""
    read = set()
    for path in list(REPO.glob('roles/*/defaults/main.yml')) + list(REPO.glob('playbooks/*.yml')):
        read |= set(ENV_LOOKUP.findall(path.read_text(encoding='utf-8')))
    for path in REPO.glob('plugins/module_utils/*.py'):
        for names in re.findall(r'env_fallback,\s*\[([^\]]*)\]', path.read_text(encoding='utf-8')):
            read |= set(re.findall(r'"([A-Z0-9_]+)"', names))
    unread = sorted(set(ctype['injectors'].get('env', {})) - read)
    assert not unread, f'{name}: injects {unread}, which no role default, playbook or module option reads'


@pytest.mark.parametrize('name,ctype', _credential_types())
def test_extra_vars_injectors_are_declared(name, ctype):
    undeclared = sorted(set(ctype['injectors'].get('extra_vars', {})) - set(DECLARED))
    assert not undeclared, f'{name}: injects {undeclared}, which no role argument spec or playbook declares'


@pytest.mark.parametrize('name,ctype', _credential_types())
def test_secret_inputs(name, ctype):
    """An input that feeds a variable the roles treat as no_log, or an env var named like a secret, is secret: true."""
    no_log_env = set()
    for defaults in REPO.glob('roles/*/defaults/main.yml'):
        specs = _load(defaults.parent.parent / 'meta' / 'argument_specs.yml')['argument_specs']['main']['options']
        for var, value in (_load(defaults) or {}).items():
            if specs.get(var, {}).get('no_log'):
                no_log_env |= set(ENV_LOOKUP.findall(str(value)))
    fields = {field['id']: field for field in ctype['inputs']['fields']}
    env = jinja2.sandbox.ImmutableSandboxedEnvironment()
    for var, template in ctype['injectors'].get('env', {}).items():
        if var in no_log_env or re.search('SECRET|PASSWORD|TOKEN', var):
            for input_id in jinja2.meta.find_undeclared_variables(env.parse(template)) - {'tower'}:
                assert fields[input_id].get('secret') is True, f'{name}: input {input_id} feeds {var} but is not secret: true'
    assert no_log_env, 'no role default reads a no_log variable from the environment: the check above checks nothing'


def _render(ctype, inputs, ca_path='/runner/env/tmpca'):
    """The injectors as AWX renders them (awx/main/models/credential: sandboxed Jinja, missing booleans false)."""
    namespace = dict(inputs)
    for field in ctype['inputs']['fields']:
        if field.get('type') == 'boolean' and field['id'] not in namespace:
            namespace[field['id']] = False
    namespace['tower'] = {'filename': {key.split('.', 1)[1]: ca_path for key in ctype['injectors'].get('file', {}) if '.' in key}}
    env = jinja2.sandbox.ImmutableSandboxedEnvironment()
    return {kind: {key: env.from_string(template).render(**namespace) for key, template in templates.items()}
            for kind, templates in ctype['injectors'].items()}


@pytest.mark.parametrize('prefix,url_path', [(None, ''), ('', ''), ('longhorn', 'longhorn/'), ('/homelab/longhorn/', 'homelab/longhorn/')])
def test_injectors_render_what_the_roles_expect(prefix, url_path):
    ctype = _load(AWX / 'credential_types' / 'longhorn_dr_s3.yml')
    inputs = {'endpoint_url': 'https://minio.lan:9000', 'access_key': 'AK', 'secret_key': 'SK', 'bucket': 'backups', 'region': 'eu-1'}
    if prefix is not None:
        inputs['prefix'] = prefix
    out = _render(ctype, inputs)
    assert out['env']['AWS_ENDPOINT_URL'] == 'https://minio.lan:9000'
    assert out['env']['AWS_ACCESS_KEY_ID'] == 'AK' and out['env']['AWS_SECRET_ACCESS_KEY'] == 'SK'
    extra = out['extra_vars']
    # ref §3.1: s3://<bucket>@<region>/<path>/ with the trailing slash.
    assert extra['backup_target_url'] == f's3://backups@eu-1/{url_path}'
    for name, value in extra.items():
        if name.endswith('_bucket'):
            assert value == 'backups', name
        elif name.endswith('_region'):
            assert value == 'eu-1', name
        elif name.endswith('_prefix'):
            assert value == url_path.rstrip('/'), name
        elif name.endswith('_validate_certs'):
            # An unset skip_tls_verify keeps verification on.
            assert value == 'True', name
    assert extra['backup_gate_ca_bundle'] == '' and extra['backup_target_cert'] == ''


def test_injectors_render_tls_options():
    ctype = _load(AWX / 'credential_types' / 'longhorn_dr_s3.yml')
    inputs = {'endpoint_url': 'https://minio.lan:9000', 'access_key': 'AK', 'secret_key': 'SK', 'bucket': 'b',
              'ca_bundle': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'skip_tls_verify': True}
    out = _render(ctype, inputs, ca_path='/runner/env/tmpXYZ')
    assert out['env']['AWS_REGION'] == 'us-east-1' and out['extra_vars']['backup_target_url'] == 's3://b@us-east-1/'
    assert out['file']['template.ca_bundle'] == inputs['ca_bundle']
    assert out['extra_vars']['backup_gate_ca_bundle'] == '/runner/env/tmpXYZ'
    assert out['extra_vars']['backup_target_cert'] == inputs['ca_bundle']
    validate = {name: value for name, value in out['extra_vars'].items() if name.endswith('_validate_certs')}
    assert validate and set(validate.values()) == {'False'}, validate


def test_injected_booleans_survive_strings():
    """AWX injects "True"/"False": every boolean injected extra var must be read with | bool or passed whole to a module."""
    bools = [name for name in _injected_extra_vars() if DECLARED[name].get('type') == 'bool']
    assert bools, 'no boolean is injected: nothing to check'
    bad = {name: uses for name in bools if (uses := _raw_bool_uses(name))}
    assert not bad, f'read as a truth value without | bool (a string "False" is true): {bad}'


# --- job templates and surveys ---------------------------------------------------------------------------------------

def _wrapper_target(path):
    plays = _load(path)
    assert isinstance(plays, list) and len(plays) == 1, f'{path.name}: one import_playbook, nothing else'
    target = plays[0].get('ansible.builtin.import_playbook')
    assert target and target.startswith('homelab.longhorn_dr.'), f'{path.name}: imports {target!r}'
    return target.split('.', 2)[2]


def test_job_templates_cover_the_playbooks_issue_5_asks_for():
    wrapped = {_wrapper_target(PROJECT / template['playbook']) for template in _job_templates()}
    missing = REQUIRED_PLAYBOOKS - wrapped
    assert not missing, f'no job template runs {sorted(missing)}'
    names = [template['name'] for template in _job_templates()]
    assert len(names) == len(set(names)), f'duplicate job template names: {names}'


@pytest.mark.parametrize('template', _job_templates(), ids=lambda t: t['name'])
def test_job_template_playbook(template):
    """The template's playbook is a wrapper in the project that imports an existing playbook of the collection."""
    wrapper = PROJECT / template['playbook']
    assert wrapper.is_file(), f'{template["name"]}: {wrapper.relative_to(REPO)} does not exist'
    target = _wrapper_target(wrapper)
    assert (REPO / 'playbooks' / f'{target}.yml').is_file(), f'{wrapper.name} imports a playbook that does not exist: {target}'


def test_every_wrapper_has_a_job_template():
    used = {template['playbook'] for template in _job_templates()}
    unused = sorted(path.name for path in PROJECT.glob('*.yml') if path.name not in used)
    assert not unused, f'wrappers without a job template: {unused}'


@pytest.mark.parametrize('template', _job_templates(), ids=lambda t: t['name'])
def test_job_template_credentials(template):
    """s3 where the playbook's roles read AWS_* from the environment, kubernetes where it connects to the cluster."""
    assert set(template['credentials']) <= {'s3', 'kubernetes'}, template['credentials']
    playbook = REPO / 'playbooks' / f'{_wrapper_target(PROJECT / template["playbook"])}.yml'
    text = playbook.read_text(encoding='utf-8')
    roles = re.findall(r'name:\s*homelab\.longhorn_dr\.([a-z_]+)', text)
    read = set(ENV_LOOKUP.findall(text))
    for role in roles:
        read |= set(ENV_LOOKUP.findall((REPO / 'roles' / role / 'defaults' / 'main.yml').read_text(encoding='utf-8')))
    injected = {env for _name, ctype in _credential_types() for env in ctype['injectors'].get('env', {})}
    assert ('s3' in template['credentials']) == bool(read & injected), f'{template["name"]}: reads {sorted(read)}'
    assert ('kubernetes' in template['credentials']) == ('K8S_AUTH_KUBECONFIG' in read), f'{template["name"]}: reads {sorted(read)}'


@pytest.mark.parametrize('template', _job_templates(), ids=lambda t: t['name'])
def test_job_template_extra_vars(template):
    """Fixed extra vars are declared, valid for their choices, and never shadowed by (or shadowing) a credential."""
    injected = set(_injected_extra_vars())
    for name, value in (template.get('extra_vars') or {}).items():
        assert name in DECLARED, f'{template["name"]}: extra var {name} is not declared by a role or playbook'
        choices = DECLARED[name].get('choices')
        assert not choices or value in choices, f'{template["name"]}: {name}={value!r} not in {choices}'
        assert name not in injected, f'{template["name"]}: {name} is also injected by the S3 credential'


@pytest.mark.parametrize('template_name,item', list(_survey_items()), ids=lambda v: v if isinstance(v, str) else v['variable'])
def test_survey_item(template_name, item):
    variable = item['variable']
    assert variable in DECLARED, f'{template_name}: survey variable {variable} is not declared by a role or playbook'
    assert variable not in _injected_extra_vars(), f'{template_name}: {variable} is also injected by the S3 credential'
    for key in ('question_name', 'question_description', 'type', 'required'):
        assert key in item, f'{template_name}: {variable} has no {key}'
    assert item['type'] in SURVEY_TYPES, f'{template_name}: {variable} has type {item["type"]}'
    spec = DECLARED[variable]
    declared_type = spec.get('type', 'str')
    choices = item.get('choices')
    if item['type'] in ('multiplechoice', 'multiselect'):
        assert choices and len(choices) == len(set(choices)), f'{template_name}: {variable} needs distinct choices'
        assert all(isinstance(choice, str) for choice in choices)
        assert item.get('default') in choices or (item['type'] == 'multiselect' and not item.get('default'))
    if declared_type == 'bool':
        # AWX has no boolean question: a multiple choice of "true"/"false", read with | bool.
        assert item['type'] == 'multiplechoice' and set(choices) <= {'true', 'false'}, f'{template_name}: {variable}'
        expected = SAFER_SURVEY_DEFAULTS.get(variable, _bool_string(spec.get('default', False)))
        assert item['default'] == expected, f'{template_name}: {variable} defaults to {item["default"]}, not the safe {expected}'
        uses = _raw_bool_uses(variable)
        assert not uses, f'{variable} is read as a truth value without | bool; the survey answer "false" would be true: {uses}'
    elif spec.get('choices'):
        assert item['type'] == 'multiplechoice', f'{template_name}: {variable} has choices {spec["choices"]}'
        assert set(choices) <= {str(choice) for choice in spec['choices']}, f'{template_name}: {variable} {choices} ⊄ {spec["choices"]}'
    elif declared_type == 'int':
        assert item['type'] == 'integer', f'{template_name}: {variable} is an int'
    elif declared_type == 'list':
        # A text answer is a string: only for lists the role also takes as a comma-separated string.
        assert item['type'] == 'multiselect' or 'comma-separated' in str(spec.get('description')), \
            f'{template_name}: {variable} is a list; a {item["type"]} answer would reach the role as a string'
    else:
        assert declared_type in ('str', 'raw', 'path'), f'{template_name}: {variable} has type {declared_type}'
        assert item['type'] in ('text', 'textarea', 'password', 'integer'), f'{template_name}: {variable}'
    if item['type'] == 'integer':
        assert isinstance(item['default'], int) and item.get('min', item['default']) <= item['default'] <= item.get('max', item['default'])


@pytest.mark.parametrize('template', _job_templates(), ids=lambda t: t['name'])
def test_survey_variables_are_distinct(template):
    variables = [item['variable'] for item in template.get('survey', []) or []]
    assert len(variables) == len(set(variables)), variables


# --- the project and the setup playbook ------------------------------------------------------------------------------

def test_project_requirements_match_galaxy():
    requirements = {item['name']: item.get('version') for item in _load(PROJECT / 'collections' / 'requirements.yml')['collections']}
    galaxy = _load(REPO / 'galaxy.yml')
    own = f'{galaxy["namespace"]}.{galaxy["name"]}'
    assert own in requirements, f'{own} is not in the project requirements'
    for dependency, version in galaxy.get('dependencies', {}).items():
        assert requirements.get(dependency) == version, f'{dependency}: project wants {requirements.get(dependency)}, galaxy.yml {version}'


@pytest.mark.parametrize('playbooks', [[AWX / 'configure_awx.yml'], sorted(PROJECT.glob('*.yml'))], ids=['configure_awx', 'project'])
def test_syntax_check(playbooks):
    """One ansible-playbook run per group (each costs a second or two); awx.awx 24.6.1 is vendored in .collections."""
    assert playbooks
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / '.collections'), ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    binary = pathlib.Path(sys.executable).parent / 'ansible-playbook'
    result = subprocess.run([str(binary), '--syntax-check'] + [str(playbook) for playbook in playbooks], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_configure_awx_module_arguments(tmp_path):
    """Every awx.awx task of configure_awx.yml passes the module's argument validation.

    There is no AWX here: a copy of the play, with every task allowed to fail and no_log off (only placeholder
    inputs), runs against an address nothing listens on. A module whose arguments are valid gets as far as
    connecting; a wrong option name, type or choice fails before that, with another message.
    """
    plays = _load(AWX / 'configure_awx.yml')
    awx_tasks = []
    for task in plays[0]['tasks']:
        task['ignore_errors'] = True
        task.pop('no_log', None)
        if any(key.startswith('awx.awx.') for key in task):
            awx_tasks.append(task['name'])
    assert awx_tasks, 'configure_awx.yml has no awx.awx task'
    copy = tmp_path / 'configure_awx.yml'
    copy.write_text(yaml.safe_dump(plays, sort_keys=False), encoding='utf-8')
    # The copy finds the data files where the original does: next to it.
    for data in ('credential_types', 'job_templates.yml'):
        (tmp_path / data).symlink_to(AWX / data)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / '.collections'), ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'),
               ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_JSON_INDENT='0', ANSIBLE_NOCOLOR='1',
               CONTROLLER_HOST='https://127.0.0.1:9', CONTROLLER_OAUTH_TOKEN='not-a-token', CONTROLLER_VERIFY_SSL='false')
    for name in ('CONTROLLER_USERNAME', 'CONTROLLER_PASSWORD', 'TOWER_HOST', 'TOWER_OAUTH_TOKEN'):
        env.pop(name, None)
    command = [str(pathlib.Path(sys.executable).parent / 'ansible-playbook'), str(copy),
               '-e', 'longhorn_dr_awx_ee_image=registry.invalid/longhorn-dr-ee:1',
               '-e', 'longhorn_dr_awx_project_scm_url=https://git.invalid/longhorn-dr.git']
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    document = json.loads(result.stdout[result.stdout.index('{'):]) if '{' in result.stdout else {}
    ran = {}
    for task in [task for play in document.get('plays', []) for task in play['tasks']]:
        host = task['hosts'].get('localhost', {})
        ran[task['task']['name']] = [item.get('msg', '') for item in host.get('results', [host])]
    for name in awx_tasks:
        assert ran.get(name), f'{name} did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
        for message in ran[name]:
            assert 'trying to connect to https://127.0.0.1:9' in str(message), f'{name}: {message}'


def test_configure_awx_uses_the_data_files():
    """configure_awx.yml reads the data files (not a copy of them) and keeps AWX's {{ }} away from Ansible's templating."""
    text = (AWX / 'configure_awx.yml').read_text(encoding='utf-8')
    assert "'/credential_types/*.yml'" in text and 'job_templates.yml' in text
    # include_vars / vars_files would template the injectors' {{ endpoint_url }} on use and fail.
    assert 'include_vars' not in text and 'vars_files' not in text
    modules = set(re.findall(r'^\s+((?:awx\.awx|ansible\.builtin)\.[a-z_]+):', text, re.M))
    assert {'awx.awx.credential_type', 'awx.awx.job_template', 'awx.awx.project', 'awx.awx.execution_environment'} <= modules
