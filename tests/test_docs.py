# Copyright (c) cllip_mm contributors. All rights reserved.
"""The docs name only files that exist.

Checked: every backticked repository path in ``docs/*.md`` and ``README.md``
(`` `cllip_mm/...` ``, `` `configs/...` ``, `` `tools/...` ``, ...; a glob must match
something, ``path::test_name`` must name a test function of that file), and every path of
the layout block of ``docs/design.md``.
"""
import glob
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOP_DIRS = ('cllip_mm', 'configs', 'tools', 'tests', 'docs', 'demo', 'benchmarks',
            'requirements')
BACKTICKED = re.compile(r'`((?:\./)?(?:' + '|'.join(TOP_DIRS) + r')/[^`\s]*)[^`]*`')
DOCS = sorted(glob.glob(osp.join(REPO, 'docs', '*.md'))) + [osp.join(REPO, 'README.md')]


def backticked_paths():
    for doc in DOCS:
        with open(doc, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                for match in BACKTICKED.finditer(line):
                    path = match.group(1).rstrip('.,;:)')
                    if '<' in path or '...' in path or '{' in path or '$' in path:
                        continue  # a placeholder, not a path
                    yield f'{osp.relpath(doc, REPO)}:{lineno}', path


def layout_paths():
    """Paths of the ``## Layout`` code block of docs/design.md: a line without indent
    names a top-level folder, a line indented by two spaces a path inside it (its first
    word); lines indented further continue a description."""
    with open(osp.join(REPO, 'docs', 'design.md'), encoding='utf-8') as f:
        text = f.read()
    block = re.search(r'## Layout\n[^`]*```\n(.*?)```', text, re.S)
    assert block, 'docs/design.md has no "## Layout" code block'
    top = ''
    start = text[:block.start(1)].count('\n') + 1
    for lineno, line in enumerate(block.group(1).splitlines(), start):
        if not line.strip():
            continue
        word = line.split()[0]
        if not line.startswith(' '):
            top = word
            yield f'docs/design.md:{lineno}', word
        elif not line.startswith('   '):
            yield f'docs/design.md:{lineno}', osp.join(top, word)


def exists(path):
    path, _, test_name = path.partition('::')
    full = osp.join(REPO, path)
    if any(c in path for c in '*?['):
        return bool(glob.glob(full))
    if not osp.exists(full):
        return False
    if test_name:
        name = test_name.split('[')[0]
        with open(full, encoding='utf-8') as f:
            return re.search(rf'^def {re.escape(name)}\(', f.read(), re.M) is not None
    return True


def test_docs_name_paths_at_all():
    assert len(list(backticked_paths())) > 50
    assert len(list(layout_paths())) > 40


@pytest.mark.parametrize('collect', [backticked_paths, layout_paths],
                         ids=['backticked', 'design-layout'])
def test_every_path_named_in_the_docs_exists(collect):
    missing = [f'{where}: {path}' for where, path in collect() if not exists(path)]
    assert not missing, 'paths named in the docs that do not exist:\n' + '\n'.join(missing)
