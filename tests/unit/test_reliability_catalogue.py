# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/reliability.md, the reliability catalogue, stays true to the test suite (issue 10, part 5).

Every test node id it names must be collected by pytest (a parametrized id exactly; a bare function name
covers its parameters), scenario ids are unique and carry their category's prefix, every category of the
issue has scenarios, the kill-and-re-run table covers every restore phase, and there are at least 50 in all.
The checks are plain functions, also run here on a broken catalogue to show that they fail.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CATALOGUE = REPO_ROOT / 'docs' / 'reliability.md'
MIN_SCENARIOS = 50
# Heading of each category -> the prefix of its scenario ids. All are required.
CATEGORIES = {
    'Bad input': 'IN',
    'Gate bypass attempts': 'GB',
    'S3 faults': 'S3',
    'API faults': 'API',
    'Longhorn faults': 'LH',
    'Kill and re-run': 'KILL',
    'Two runs at once': 'TWO',
    'Destructive defaults': 'DD',
    'Secrets': 'SEC',
    'Check mode and plan-only': 'CHK',
}
# The phases of roles/restore_cluster/tasks/main.yml a kill must be tried in.
RESTORE_PHASES = ('plan', 'target', 'volumes', 'claims', 'report')
ROW = re.compile(r'^\|\s*(R-[^|\s]*)\s*\|')
SCENARIO_ID = re.compile(r'^R-([A-Z0-9]+)-(\d{2,3})$')
NODE_ID = re.compile(r'^tests/(unit|integration)/\S+\.py(::[A-Za-z_]\w*)+(\[.+\])?$')


def parse(text):
    """Scenarios of the catalogue: dicts with category, id, scenario, behaviour, tests (node ids), line."""
    scenarios, category = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith('## '):
            category = line[3:].strip()
            continue
        if not ROW.match(line):
            continue
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        scenarios.append({
            'category': category, 'id': cells[0], 'line': number, 'cells': len(cells),
            'scenario': cells[1] if len(cells) > 1 else '', 'behaviour': cells[2] if len(cells) > 2 else '',
            'tests': re.findall(r'`([^`]+)`', cells[3]) if len(cells) > 3 else [],
        })
    return scenarios


def form_problems(scenarios):
    """Problems of the catalogue itself, without asking pytest: shape, ids, categories, counts, phases."""
    problems = []
    seen = {}
    for entry in scenarios:
        where = 'line %d (%s)' % (entry['line'], entry['id'])
        if entry['cells'] != 4:
            problems.append('%s: %d cells, expected 4 (# | scenario | expected behaviour | test)' % (where, entry['cells']))
        match = SCENARIO_ID.match(entry['id'])
        if not match:
            problems.append('%s: the id is not R-<CATEGORY>-<number>' % where)
        elif entry['category'] not in CATEGORIES:
            problems.append('%s: under heading %r, which is not a category (%s)' % (where, entry['category'], ', '.join(CATEGORIES)))
        elif match.group(1) != CATEGORIES[entry['category']]:
            problems.append('%s: ids under %r start with R-%s-' % (where, entry['category'], CATEGORIES[entry['category']]))
        if entry['id'] in seen:
            problems.append('%s: id used twice (also on line %d)' % (where, seen[entry['id']]))
        seen.setdefault(entry['id'], entry['line'])
        if not entry['scenario'] or not entry['behaviour']:
            problems.append('%s: the scenario and its expected behaviour must both be given' % where)
        if not entry['tests']:
            problems.append('%s: names no test' % where)
        problems += ['%s: %r is not a node id under tests/unit or tests/integration' % (where, test)
                     for test in entry['tests'] if not NODE_ID.match(test)]
    counts = {name: sum(1 for entry in scenarios if entry['category'] == name) for name in CATEGORIES}
    problems += ['category %r has no scenario' % name for name, count in counts.items() if not count]
    if len(scenarios) < MIN_SCENARIOS:
        problems.append('%d scenarios, at least %d expected' % (len(scenarios), MIN_SCENARIOS))
    kills = ' '.join(entry['scenario'] for entry in scenarios if entry['category'] == 'Kill and re-run')
    problems += ['no kill-and-re-run scenario in the %s phase' % phase for phase in RESTORE_PHASES
                 if not re.search(r'\b%s phase\b' % phase, kills)]
    return problems


def node_id_problems(scenarios, collected):
    """Node ids that pytest did not collect. An id without parameters matches a parametrized test's ids too."""
    collected = set(collected)
    parametrized = {node.split('[', 1)[0] for node in collected if '[' in node}
    return ['line %d (%s): %s is not a test pytest collects' % (entry['line'], entry['id'], test)
            for entry in scenarios for test in entry['tests']
            if NODE_ID.match(test) and test not in collected and test not in parametrized]


def collect(files):
    """The node ids pytest collects from ``files``, collected as `make pytest` does (same pytest.ini)."""
    existing = sorted(name for name in files if (REPO_ROOT / name).is_file())
    if not existing:
        return set()
    completed = subprocess.run([sys.executable, '-m', 'pytest', '--collect-only', '-q', '-p', 'no:cacheprovider', '-p', 'no:xdist',
                                *existing], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, 'pytest could not collect %s:\n%s\n%s' % (existing, completed.stdout[-5000:], completed.stderr[-3000:])
    return {line.strip() for line in completed.stdout.splitlines() if '::' in line and line.startswith('tests/')}


@pytest.fixture(scope='module')
def scenarios():
    return parse(CATALOGUE.read_text(encoding='utf-8'))


def test_the_catalogue_is_well_formed(scenarios):
    problems = form_problems(scenarios)
    assert problems == [], 'docs/reliability.md:\n  ' + '\n  '.join(problems)


def test_every_named_test_is_collected(scenarios):
    files = {test.split('::', 1)[0] for entry in scenarios for test in entry['tests']}
    missing_files = sorted(name for name in files if not (REPO_ROOT / name).is_file())
    assert missing_files == [], 'docs/reliability.md names test files that do not exist: %s' % missing_files
    problems = node_id_problems(scenarios, collect(files))
    assert problems == [], 'docs/reliability.md:\n  ' + '\n  '.join(problems)


# ---- the checks fail on a broken catalogue ----------------------------------------------------------


GOOD_ROW = '| R-IN-01 | a scenario | what happens | `tests/unit/test_x.py::test_a` |'


def _catalogue(rows_by_category):
    return '\n'.join('## %s\n\n| # | scenario | expected behaviour | test |\n|---|---|---|---|\n%s\n' % (name, '\n'.join(rows))
                     for name, rows in rows_by_category.items())


def _complete(count=MIN_SCENARIOS):
    """A catalogue that passes the form checks: ``count`` scenarios spread over every category."""
    rows = {name: [] for name in CATEGORIES}
    names = list(CATEGORIES)
    for index in range(count):
        name = names[index % len(names)]
        scenario = '%s phase kill' % RESTORE_PHASES[len(rows[name]) % len(RESTORE_PHASES)] if name == 'Kill and re-run' else 'a scenario'
        rows[name].append('| R-%s-%02d | %s | what happens | `tests/unit/test_x.py::test_%d` |'
                          % (CATEGORIES[name], len(rows[name]) + 1, scenario, index))
    return rows


def test_a_complete_catalogue_passes_the_form_checks():
    assert form_problems(parse(_catalogue(_complete()))) == []


@pytest.mark.parametrize('change, expected', [
    (lambda rows: rows['Bad input'].append(rows['Bad input'][0]), 'id used twice'),
    (lambda rows: rows['Secrets'].clear(), "category 'Secrets' has no scenario"),
    (lambda rows: rows['Bad input'].__setitem__(0, GOOD_ROW.replace('R-IN-01', 'R-GB-99')), "ids under 'Bad input' start with R-IN-"),
    (lambda rows: rows['Bad input'].__setitem__(0, GOOD_ROW.replace('| what happens ', '|  ')), 'expected behaviour must both be given'),
    (lambda rows: rows['Bad input'].__setitem__(0, GOOD_ROW.replace('`tests/unit/test_x.py::test_a`', 'the smoke test')), 'names no test'),
    (lambda rows: rows['Bad input'].__setitem__(0, GOOD_ROW.replace('tests/unit/', 'test/unit/')), 'is not a node id'),
    (lambda rows: rows['Bad input'].__setitem__(0, GOOD_ROW + ' extra |'), '5 cells, expected 4'),
    (lambda rows: rows['Kill and re-run'].__setitem__(0, rows['Kill and re-run'][0].replace('plan phase', 'early')),
     'no kill-and-re-run scenario in the plan phase'),
    (lambda rows: [rows[name].pop() for name in ('Bad input', 'API faults')], '48 scenarios, at least 50 expected'),
])
def test_the_form_checks_fail_on_a_broken_catalogue(change, expected):
    rows = _complete()
    change(rows)
    problems = form_problems(parse(_catalogue(rows)))
    assert any(expected in problem for problem in problems), problems


def test_a_wrong_node_id_is_caught():
    rows = {'Bad input': [GOOD_ROW,
                          '| R-IN-02 | s | b | `tests/unit/test_x.py::test_b[one]` |',
                          '| R-IN-03 | s | b | `tests/unit/test_x.py::test_b` |',
                          '| R-IN-04 | s | b | `tests/unit/test_x.py::test_c[two]` |',
                          '| R-IN-05 | s | b | `tests/unit/test_x.py::tets_a` |']}
    collected = ['tests/unit/test_x.py::test_a', 'tests/unit/test_x.py::test_b[one]', 'tests/unit/test_x.py::test_c[one]']
    problems = node_id_problems(parse(_catalogue(rows)), collected)
    assert [problem.split(':')[0] for problem in problems] == ['line 8 (R-IN-04)', 'line 9 (R-IN-05)'], problems


def test_collect_names_the_tests_of_a_real_file():
    collected = collect(['tests/unit/test_reliability_catalogue.py'])
    assert 'tests/unit/test_reliability_catalogue.py::test_every_named_test_is_collected' in collected
    assert any(node.startswith('tests/unit/test_reliability_catalogue.py::test_the_form_checks_fail_on_a_broken_catalogue[')
               for node in collected)
