"""Every console script's --help, as a user reads it (issue 24, point 6).

Each page is what the console script prints: setup.py's entry point called with
``sys.argv = [script, '--help']``, as the generated script calls it, all in one Python process
(one torch import for every page, about 5 s, instead of 13 processes of about 50 s). The
subcommand pages a page lists (``densehybrid-bench backends``) or names
(``densehybrid-eval merge -h``) are read too. Checked: every option has a help text, every
multi-line example command has its line continuations, and no page carries developer notes.
"""

import json
import os
from pathlib import Path
import re
import subprocess
import sys
from typing import Dict, Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = dict(re.findall(r"'(densehybrid-[\w-]+) = ([\w.]+:\w+)'",
                               (REPO / 'setup.py').read_text()))
SCRIPTS = sorted(ENTRY_POINTS)
# Runs one page per request line ({"script", "argv"}) and answers {"rc", "out", "err"}.
DRIVER = r'''
import contextlib, importlib, io, json, sys, traceback
entry_points = json.loads(sys.argv[1])
reply = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    module, function = entry_points[request['script']].split(':')
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [request['script'], *request['argv']]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = getattr(importlib.import_module(module), function)()
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = 1
    code = code if isinstance(code, int) else 0 if code is None else 1
    reply.write(json.dumps({'rc': code, 'out': out.getvalue(), 'err': err.getvalue()}) + '\n')
    reply.flush()
'''
Page = Tuple[str, ...]                       # (script, subcommand...)


def subpages(page: Page, text: str) -> List[Page]:
    """Pages a help page leads to: its subcommands and the ``(X Y -h)`` pages it names."""
    found, section = [], ''
    for line in text.splitlines():
        if line and not line.startswith(' '):
            section = line
        match = re.match(r'^    ([a-z][\w-]*)(?:\s{2,}|$)', line)
        if section == 'positional arguments:' and match:       # a subparser's choices
            found.append(page + (match.group(1),))
    flat = ' '.join(text.split())
    for named in re.findall(r'\((densehybrid-[\w-]+(?: [a-z][\w-]*)+) (?:-h|--help)\)', flat):
        found.append(tuple(named.split()))
    return found


def options_without_help(text: str) -> List[str]:
    """The options of a help page that have no help text (argparse's own -h aside)."""
    lines = text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        match = re.match(r'^  (-\S.*?)(?:\s{2,}(\S.*))?$', line)
        if not match or match.group(1).startswith('-h, --help'):
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ''
        helped = match.group(2) or (re.match(r'^ {3,}\S', following)
                                    and not following.strip().startswith('-'))
        if not helped:
            missing.append(match.group(1))
    return missing


COMMAND = re.compile(r'^( {2,})(densehybrid-[\w-]+|ros2|torchrun|make|python3?|nice|colcon'
                     r'|\.venv/bin/\S+)( |$)')


def missing_continuations(text: str) -> List[str]:
    """Example commands whose next, deeper-indented line continues them without a backslash.

    And lines that end in a backslash with nothing deeper-indented after them.
    """
    lines = text.splitlines() + ['']
    problems = []
    for i, line in enumerate(lines):
        match = COMMAND.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        for j in range(i, len(lines) - 1):
            following = lines[j + 1]
            deeper = len(following) - len(following.lstrip()) > indent
            continues = bool(following.strip()) and deeper and \
                not following.strip().startswith('#')       # a comment on its own line
            if continues != lines[j].rstrip().endswith('\\'):
                problems.append(lines[j].strip())
            if not continues:
                break
    return problems


DEVELOPER_NOTES = {
    'a line count': re.compile(r'\b\d+ lines\b|\bline count\b', re.I),
    'a to-do': re.compile(r'\b(TODO|FIXME|XXX|HACK)\b'),
    'a source file': re.compile(r'[\w/]+(?<!\.launch)\.py\b'),
    'a private name': re.compile(r'(?<![\w./<>*-])_[a-z]\w*'),
    'an issue number': re.compile(r'\bissue \d+', re.I),
    'a module path': re.compile(r'\b(?:densehybrid_ros|core|metrics|models|data|deploy|training'
                                r'|ros|tools|harness|projection)\.(?!json|png|csv|npz|pt\b|yaml'
                                r'|txt|md|mcap|db3)[a-z_]+\b'),
}


def developer_notes(text: str) -> List[str]:
    """What in a help page is meant for the project's developers, not its users."""
    flat = ' '.join(text.split())
    return [f'{kind}: {match.group(0)!r}' for kind, pattern in DEVELOPER_NOTES.items()
            for match in pattern.finditer(flat)]


@pytest.fixture(scope='module')
def pages() -> Iterator[Dict[Page, str]]:
    """Every help page of every console script: (script, subcommands...) -> text."""
    env = dict(os.environ, COLUMNS='80', PYTHONPATH=str(REPO))
    driver = subprocess.Popen([sys.executable, '-c', DRIVER, json.dumps(ENTRY_POINTS)],
                              cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        found: Dict[Page, str] = {}
        todo: List[Page] = [(script,) for script in SCRIPTS]
        while todo:
            page = todo.pop(0)
            if page in found:
                continue
            driver.stdin.write(json.dumps({'script': page[0],
                                           'argv': [*page[1:], '--help']}) + '\n')
            driver.stdin.flush()
            result = json.loads(driver.stdout.readline())
            assert result['rc'] == 0 and not result['err'], (page, result)
            found[page] = result['out']
            todo += subpages(page, result['out'])
        yield found
    finally:
        driver.kill()                 # its interpreter shutdown alone takes a second
        driver.wait(timeout=30)


def pages_of(pages: Dict[Page, str], script: str) -> Dict[str, str]:
    """The pages of one console script by their command line."""
    return {' '.join(page): text for page, text in pages.items() if page[0] == script}


def test_subcommand_pages_are_read(pages) -> None:
    assert {('densehybrid-eval', 'merge'), ('densehybrid-weights', 'get'),
            ('densehybrid-ctl', 'param'), ('densehybrid-bench', 'obstacles')} <= set(pages)


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_option_has_a_help_text(pages, script) -> None:
    """Issue 24 (6): about 20 densehybrid-train options had none."""
    missing = {page: options_without_help(text)
               for page, text in pages_of(pages, script).items()}
    assert not {page: names for page, names in missing.items() if names}


@pytest.mark.parametrize('script', SCRIPTS)
def test_multi_line_examples_have_their_continuations(pages, script) -> None:
    """Issue 24 (6): the int8 example of densehybrid-export lacked its backslash."""
    broken = {page: missing_continuations(text)
              for page, text in pages_of(pages, script).items()}
    assert not {page: lines for page, lines in broken.items() if lines}


@pytest.mark.parametrize('script', SCRIPTS)
def test_no_developer_notes(pages, script) -> None:
    """Issue 24 (6): densehybrid-eval --help spoke of the module's line count."""
    notes = {page: developer_notes(text) for page, text in pages_of(pages, script).items()}
    assert not {page: found for page, found in notes.items() if found}


def test_the_demo_says_how_the_node_runs_int8(pages) -> None:
    """Issue 24 (6): densehybrid-demo --help said the node has no int8."""
    text = ' '.join(pages[('densehybrid-demo',)].split())
    assert 'no int8' not in text
    assert 'int8 with --backend openvino and --artifacts' in text
    assert 'densehybrid-demo --backend openvino --precision int8 --artifacts' in text


def test_sizes_are_h_w_everywhere(pages) -> None:
    """Issue 24 (6): densehybrid-eval-families took --size HxW."""
    sized = {page: re.findall(r'^  (--(?!batch-)(?:[\w-]+-)?size\b.*?)(?:\s{2,}|$)', text,
                              re.M)
             for page, text in pages.items()}          # image sizes: --size, --scene-size
    sized = {page: options for page, options in sized.items() if options}
    assert len(sized) > 5 and ('densehybrid-eval-families',) in sized
    assert {page: options for page, options in sized.items()
            if any(not option.endswith(' H W') for option in options)} == {}
    assert not [page for page, text in pages.items()
                if re.search(r'--(?:[\w-]+-)?size \d+x\d+|HxW', text)]


# The checks themselves, on pages they must refuse.
def test_the_checks_find_what_they_look_for() -> None:
    page = ('options:\n  -h, --help  show this help message and exit\n'
            '  --seed SEED\n  --lr LR      learning rate\n  --calibration-frames N\n'
            '                        frames\n  --arch ARCH\n  --crop H W\n')
    assert options_without_help(page) == ['--seed SEED', '--arch ARCH', '--crop H W']
    example = ('examples:\n  densehybrid-export --format openvino --precision int8\n'
               '      --calibration out/bag --output out/x\n'
               '  densehybrid-eval a \\\n      --output b   # fine\n'
               '  densehybrid-eval c --output d   # a comment\n'
               '                                  # goes on here\n'
               '  densehybrid-eval e \\\n\n')
    assert missing_continuations(example) == [
        'densehybrid-export --format openvino --precision int8', 'densehybrid-eval e \\']
    notes = developer_notes('this module is 480 lines; see _run in core/staging.py and '
                            'data.synthetic.Sequence (issue 23); writes metrics.json, '
                            'densehybrid.launch.py')
    assert [note.split(':')[0] for note in notes] == [
        'a line count', 'a source file', 'a private name', 'an issue number', 'a module path']
    assert subpages(('x',), 'positional arguments:\n  {a,b}\n    a    one\n    b\n'
                            'options:\n    c  no\n(densehybrid-y z -h)') == [
        ('x', 'a'), ('x', 'b'), ('densehybrid-y', 'z')]
