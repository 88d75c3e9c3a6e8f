"""The package's shape: no import circle (function-level imports included), layers import down."""

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / 'densehybrid_ros'
# Lowest first: a module may import from its own layer and the layers before it.
LAYERS = ['core', 'metrics', 'models', 'data', 'deploy', 'training', 'ros', 'tools']


def module_names() -> Dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    names = {}
    for path in PACKAGE.rglob('*.py'):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        names['.'.join(parts)] = path
    return names


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The package modules ``name`` imports anywhere in its file (functions included)."""
    found = set()
    is_package = path.name == '__init__.py'
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                here = name.split('.') if is_package else name.split('.')[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = '.'.join(here + ([base] if base else []))
            targets = [f'{base}.{alias.name}' for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # the longest prefix that is a module: ``pkg.mod.attr`` -> ``pkg.mod``
            parts = target.split('.')
            while parts and '.'.join(parts) not in modules:
                parts.pop()
            if parts and '.'.join(parts) != name:
                found.add('.'.join(parts))
    return found


def graph() -> Dict[str, Set[str]]:
    """Import graph of the package's own modules."""
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(edges: Dict[str, Set[str]]) -> List[str]:
    """One import cycle as a path that ends where it starts, or [] when there is none."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def layer_of(name: str) -> int:
    """Index of the layer a module belongs to (-1 for the package root)."""
    parts = name.split('.')
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) == []


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    edges = graph()
    # ros/node.py imports the Segmenter inside a method (torch loads only when configured)
    assert 'densehybrid_ros.deploy.segmenter' in edges['densehybrid_ros.ros.node']
    assert 'densehybrid_ros.core.classes' in edges['densehybrid_ros.metrics.anomaly']


def test_no_import_cycle() -> None:
    assert find_cycle(graph()) == []


def test_every_top_level_folder_is_a_layer_and_imports_only_downward() -> None:
    edges = graph()
    tops = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / '__init__.py').exists()}
    assert tops == set(LAYERS)
    assert [p.name for p in PACKAGE.glob('*.py')] == ['__init__.py']
    upward = sorted(f'{a} -> {b}' for a, targets in edges.items() for b in targets
                    if layer_of(b) > layer_of(a))
    assert upward == []


def test_no_module_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob('*.py')
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_test_file_names_are_unique():
    # pytest imports test modules by their basename (no __init__.py in test/)
    names = [p.name for p in (PACKAGE.parent / 'test').rglob('test_*.py')]
    assert sorted({n for n in names if names.count(n) > 1}) == []
