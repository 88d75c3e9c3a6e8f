"""Run every command block of README.md and docs/*.md as written, in document order.

A command block is a fenced ```bash, ```sh or ```console block (console: the ``$ `` lines). The
blocks run one after another in a scratch copy of the tracked files (``git ls-files``, mtimes
kept) with the checkout's ``.venv`` linked in, so relative paths such as
``out/demo/sample_bag`` behave as for a user. A block fails on a non-zero exit, or when a file
it names as an output (``--output``, ``--output-bag``, ``--calibrated-checkpoint``,
``--record``, ``--json``) is missing afterwards.

Markers, HTML comments on the lines right before a block (several may stack):

* ``<!-- docs-test: skip: REASON -->``: what CI lacks (ros2cli, CUDA, the authors' downloads,
  data sets, a camera) or the set-up command itself; listed as skipped with REASON.
* ``<!-- docs-test: slow: REASON -->``: over this test's time budget (about 90 s for the whole
  file); skipped with REASON unless ``DOCS_TEST_ALL=1``.
* ``<!-- docs-test: args: TOOL OPTIONS; TOOL OPTIONS -->``: smaller sizes for the test, appended
  to every ``.venv/bin/TOOL`` command of the block (argparse keeps the last value given).
* ``<!-- docs-test: until: TEXT -->``: each command of the block runs forever (a node); it is
  started alone, must print TEXT, and must then exit 0 on SIGINT.

``make demo`` is not run (the set-up command itself); where later blocks use its sample bag, a
stand-in is made by its first step, ``densehybrid-make-bag --sequence``, at 3 frames of 360x640
(the node's warm-up size: with ``backend: auto`` one exported graph serves the node and eval).
"""

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))
LANGS = ('bash', 'sh', 'console')
KINDS = ('skip', 'slow', 'args', 'until')
MARKER = re.compile(r'^<!-- docs-test: ([a-z]+): ?(.*?) -->$')
FENCE = re.compile(r'^```(\S*)\s*$')
OUTPUT_OPTIONS = ('--output', '--output-bag', '--calibrated-checkpoint', '--record', '--json')
BLOCK_TIMEOUT_S = 300
UNTIL_TIMEOUT_S = 120
# make demo's first step (densehybrid-demo: make-bag --sequence --speed 1.2), 3 small frames
DEMO_BAG = ['.venv/bin/densehybrid-make-bag', '--sequence', '--speed', '1.2', '--frames', '3',
            '--size', '360', '640', '--output', 'out/demo/sample_bag', '--quiet']


class Block(NamedTuple):
    """One command block: where it is, its language, text and markers."""

    path: Path
    line: int
    lang: str
    text: str
    markers: Tuple[Tuple[str, str], ...]

    @property
    def name(self) -> str:
        """Id naming file and line."""
        return f'{self.path.relative_to(ROOT)}:{self.line}'


def parse(path: Path) -> List[Block]:
    """The command blocks of one Markdown file, in order."""
    lines = path.read_text(encoding='utf-8').splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() != '```':
            end += 1
        markers, k = [], i - 1
        while k >= 0 and MARKER.match(lines[k]):
            markers.insert(0, MARKER.match(lines[k]).groups())
            k -= 1
        if fence.group(1) in LANGS:
            blocks.append(Block(path, i + 1, fence.group(1), '\n'.join(lines[i + 1:end]),
                                tuple(markers)))
        i = end + 1
    return blocks


BLOCKS = [block for path in DOCS for block in parse(path)]


def logical_lines(block: Block) -> List[str]:
    """The block's commands with backslash continuations joined (console: the $ lines)."""
    raw = block.text.splitlines()
    if block.lang == 'console':
        kept, inside = [], False
        for line in raw:
            if line.startswith('$ '):
                kept.append(line[2:])
                inside = line.endswith('\\')
            elif inside:
                kept.append(line)
                inside = line.endswith('\\')
        raw = kept
    joined, current = [], ''
    for line in raw:
        line = line.strip() if current else line
        if line.endswith('\\'):
            current += line[:-1].rstrip() + ' '
        else:
            joined.append(current + line)
            current = ''
    return [line for line in joined if line.strip() and not line.lstrip().startswith('#')]


def split_comment(line: str) -> Tuple[str, str]:
    """(code, trailing comment) of one shell line; quotes respected."""
    quote = ''
    for i, char in enumerate(line):
        if quote:
            quote = '' if char == quote else quote
        elif char in '\'"':
            quote = char
        elif char == '#' and i > 0 and line[i - 1] in ' \t':
            return line[:i].rstrip(), line[i:]
    return line.rstrip(), ''


def overrides(block: Block) -> Dict[str, str]:
    """TOOL -> options to append, from the block's args markers."""
    table = {}
    for kind, value in block.markers:
        if kind == 'args':
            for part in value.split(';'):
                tool, _, options = part.strip().partition(' ')
                table[tool] = options.strip()
    return table


def commands(block: Block) -> List[str]:
    """The block's commands as the test runs them: args markers applied, comments dropped."""
    table, out = overrides(block), []
    for line in logical_lines(block):
        code, _ = split_comment(line)
        background = code.endswith('&')
        code = code[:-1].rstrip() if background else code
        words = code.split()
        tool = Path(words[0]).name if words else ''
        if tool in table and words[0].startswith('.venv/bin/'):
            code = f'{code} {table[tool]}'
        out.append(code + (' &' if background else ''))
    return out


def named_outputs(command: str) -> List[str]:
    """Files and folders a command names as its outputs."""
    words = shlex.split(command.rstrip('&'))
    if not words or Path(words[0]).name == 'densehybrid-node':
        return []
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in OUTPUT_OPTIONS]


@pytest.fixture(scope='module')
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the tracked files, the checkout's .venv linked in, a demo bag."""
    if shutil.which('git') is None or not (ROOT / '.git').exists():
        pytest.fail('the docs test needs the git checkout (git ls-files)')
    listed = subprocess.run(['git', '-C', str(ROOT), 'ls-files', '-z'], check=True,
                            capture_output=True).stdout.decode().split('\0')
    scratch = tmp_path_factory.mktemp('checkout')
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():                    # tracked but deleted in the working tree: gone
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, scratch / name)   # copy2 keeps mtimes: make sees no change
    (scratch / '.venv').symlink_to((ROOT / '.venv').resolve())
    subprocess.run(DEMO_BAG, cwd=scratch, env=block_env(), check=True, capture_output=True,
                   timeout=BLOCK_TIMEOUT_S)
    return scratch


def block_env() -> Dict[str, str]:
    """The user's environment on a ROS domain of this test session's own."""
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(20 + (os.getpid() + 90) % 180)
    env.pop('PYTHONPATH', None)
    return env


def run_script(script: str, cwd: Path) -> Tuple[int, str]:
    """Run a bash script in its own process group; (exit code, output)."""
    wrapped = ('set -eo pipefail\n'
               "trap 'for p in $(jobs -p); do kill -INT $p 2>/dev/null; done; wait' EXIT\n"
               + script)
    proc = subprocess.Popen(['bash', '-c', wrapped], cwd=cwd, env=block_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return 124, output
    return proc.returncode, output


def run_until(command: str, text: str, cwd: Path) -> Tuple[int, str]:
    """Start a command that runs forever, wait for TEXT, SIGINT it; (exit code, output)."""
    proc = subprocess.Popen(['bash', '-c', command], cwd=cwd, env=block_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    output, deadline = b'', time.monotonic() + UNTIL_TIMEOUT_S
    while text.encode() not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        chunk = os.read(proc.stdout.fileno(), 65536) if ready else b''
        if ready and not chunk:
            break                               # it ended by itself
        output += chunk
    found = text.encode() in output
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate()
    decoded = (output + rest).decode(errors='replace')
    if not found:
        return proc.returncode or -1, f'never printed {text!r}:\n{decoded}'
    return proc.returncode, decoded


def test_the_parser_sees_blocks_and_markers() -> None:
    names = {block.name: block for block in BLOCKS}
    assert len(BLOCKS) >= 10, names
    for block in BLOCKS:
        for kind, value in block.markers:
            assert kind in KINDS and value, f'{block.name}: unknown or empty marker {kind!r}'
    readme = [block for block in BLOCKS if block.path.name == 'README.md']
    assert readme[0].markers[0][0] == 'skip' and 'make demo' in readme[0].text
    sample = Block(ROOT, 1, 'bash', '.venv/bin/densehybrid-eval a --output o \\\n'
                   '    --json j.json   # note\n.venv/bin/densehybrid-node x &',
                   (('args', 'densehybrid-eval --frames 1'),))
    assert commands(sample) == ['.venv/bin/densehybrid-eval a --output o --json j.json'
                                ' --frames 1', '.venv/bin/densehybrid-node x &']
    assert named_outputs(commands(sample)[0]) == ['o', 'j.json']
    assert named_outputs(commands(sample)[1]) == []


def test_relative_links_resolve() -> None:
    broken = []
    for path in DOCS:
        for target in re.findall(r'\]\(([^)\s]+)\)', path.read_text(encoding='utf-8')):
            if '://' not in target and not target.startswith('#'):
                if not (path.parent / target.split('#')[0]).exists():
                    broken.append(f'{path.relative_to(ROOT)}: {target}')
    assert not broken


def test_the_scratch_copy_is_no_staler_than_the_checkout(checkout: Path) -> None:
    """Make reinstalls in the copy exactly when it would in the checkout (mtimes kept)."""
    if shutil.which('make') is None:
        pytest.skip('no make')
    here = subprocess.run(['make', '-q', 'setup'], cwd=ROOT, capture_output=True).returncode
    there = subprocess.run(['make', '-q', 'setup'], cwd=checkout, capture_output=True).returncode
    assert there == here


@pytest.mark.parametrize('block', BLOCKS, ids=[block.name for block in BLOCKS])
def test_command_block(block: Block, checkout: Path) -> None:
    markers = dict(block.markers)
    if 'skip' in markers:
        pytest.skip(markers['skip'])
    if 'slow' in markers and os.environ.get('DOCS_TEST_ALL') != '1':
        pytest.skip(f"over the docs test's time budget: {markers['slow']} (DOCS_TEST_ALL=1 "
                    'runs it)')
    runs = commands(block)
    if 'until' in markers:
        for command in runs:
            code, output = run_until(command, markers['until'], checkout)
            assert code == 0, f'{block.name}: {command}\nexit {code}\n{output[-4000:]}'
    else:
        code, output = run_script('\n'.join(runs) + '\n', checkout)
        assert code == 0, f'{block.name}: exit {code}\n{block.text}\n{output[-4000:]}'
    missing = [path for command in runs for path in named_outputs(command)
               if not (checkout / path).exists()]
    assert not missing, f'{block.name}: named outputs missing: {missing}'
