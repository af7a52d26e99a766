# Copyright (c) cllip_mm contributors. All rights reserved.
"""The import structure of ``cllip_mm``: no import cycle, no layer importing a higher one.

Every module under ``cllip_mm/`` is parsed with :mod:`ast` (nothing is imported), and each
``import`` / ``from ... import`` statement anywhere in it, at module level or inside a
function, is an edge to the ``cllip_mm`` module it names (``from pkg import name`` is an
edge to ``pkg`` and, when ``pkg.name`` is a module, to it as well).
"""
import ast
import os.path as osp
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'cllip_mm'

#: The one module that may import every subpackage: ``register_all_modules`` imports all
#: of them, inside the function, to fill the registries (as ``mmdet.utils.setup_env``).
#: It is the top of the stack, wherever it sits; its edges are left out of the
#: subpackage graph.
REGISTRATION_ENTRY_POINT = 'cllip_mm.utils.setup_env'

#: Subpackages that must not import each other's code in the given direction.
FORBIDDEN = [
    ('models', 'datasets'),    # a model is built without any dataset code
    ('datasets', 'models'),    # data loading needs no model code (tokenizers included)
]

#: The bottom layer: these import no other cllip_mm subpackage than each other.
BASE = {'registry', 'version', 'structures', 'text'}


def _modules() -> Dict[str, Tuple[Path, bool]]:
    """``{dotted name: (file, is_package)}`` of every module of the package."""
    mods = {}
    for path in sorted((ROOT / PACKAGE).rglob('*.py')):
        parts = list(path.relative_to(ROOT).with_suffix('').parts)
        is_pkg = parts[-1] == '__init__'
        if is_pkg:
            parts = parts[:-1]
        mods['.'.join(parts)] = (path, is_pkg)
    return mods


def _imports(name: str, path: Path, is_pkg: bool,
             mods: Dict[str, Tuple[Path, bool]]) -> List[Tuple[str, int]]:
    """``(imported cllip_mm module, line)`` of every import statement of a module."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1
                base = name.split('.') if is_pkg else name.split('.')[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = '.'.join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ''
            targets = [source] + [f'{source}.{a.name}' for a in node.names
                                  if f'{source}.{a.name}' in mods]
        else:
            continue
        for target in targets:
            if target.split('.')[0] != PACKAGE:
                continue
            while target not in mods and '.' in target:  # `import a.b.c` of a name
                target = target.rsplit('.', 1)[0]
            if target != name:
                out.append((target, node.lineno))
    return out


@pytest.fixture(scope='module')
def graph() -> Dict[str, Dict[str, int]]:
    """``{module: {imported module: first line}}``."""
    mods = _modules()
    edges: Dict[str, Dict[str, int]] = defaultdict(dict)
    for name, (path, is_pkg) in mods.items():
        for target, line in _imports(name, path, is_pkg, mods):
            edges[name].setdefault(target, line)
    return edges


def _subpackage(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def _where(graph, src: str, dst_test) -> List[str]:
    """``file:line: module -> module`` of the edges out of ``src`` accepted by ``dst_test``."""
    mods = _modules()
    return [f'{osp.relpath(mods[src][0], ROOT)}:{line}: {src} -> {dst}'
            for dst, line in sorted(graph[src].items()) if dst_test(dst)]


def test_graph_sees_the_package(graph):
    # the parse found the package and its usual edges (a broken walk passes nothing)
    assert len(_modules()) > 50
    assert 'cllip_mm.registry' in graph['cllip_mm.datasets.region_text']
    assert 'cllip_mm.datasets' in graph[REGISTRATION_ENTRY_POINT]


def test_no_module_import_cycle(graph):
    cycles = _cycles({k: set(v) for k, v in graph.items()})
    details = [edge for cycle in cycles for m in cycle
               for edge in _where(graph, m, lambda d, c=cycle: d in c)]
    assert not cycles, 'modules that import each other:\n' + '\n'.join(details)


def test_no_subpackage_import_cycle(graph):
    sub_edges: Dict[str, Set[str]] = defaultdict(set)
    for src, dsts in graph.items():
        if src == REGISTRATION_ENTRY_POINT:
            continue
        for dst in dsts:
            if _subpackage(src) != _subpackage(dst):
                sub_edges[_subpackage(src)].add(_subpackage(dst))
    cycles = _cycles(sub_edges)
    details = [edge for cycle in cycles for src in graph if src != REGISTRATION_ENTRY_POINT
               and _subpackage(src) in cycle
               for edge in _where(graph, src, lambda d, s=src, c=cycle: _subpackage(d) in c
                                  and _subpackage(d) != _subpackage(s))]
    assert not cycles, (f'subpackages that import each other {cycles}:\n'
                        + '\n'.join(details))


@pytest.mark.parametrize('low,high', FORBIDDEN)
def test_layers_do_not_import_across(graph, low, high):
    bad = [edge for src in graph if _subpackage(src) == low
           for edge in _where(graph, src, lambda d: _subpackage(d) == high)]
    assert not bad, f'cllip_mm.{low} imports cllip_mm.{high}:\n' + '\n'.join(bad)


def test_base_layer_imports_only_base(graph):
    bad = [edge for src in graph if _subpackage(src) in BASE
           for edge in _where(graph, src, lambda d: _subpackage(d) not in BASE | {''})]
    assert not bad, 'the base layer imports a higher one:\n' + '\n'.join(bad)
