#!/usr/bin/env python
# Copyright (c) cllip_mm contributors. All rights reserved.
"""Install cllip_mm. Install torch (and build mmcv) first: see tools/install.sh."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
VERSION_FILE = osp.join(HERE, 'cllip_mm', 'version.py')


def get_version() -> str:
    """Read ``__version__`` from cllip_mm/version.py without importing the package."""
    with open(VERSION_FILE, encoding='utf-8') as f:
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(), re.M)
    if match is None:
        raise RuntimeError(f'{VERSION_FILE}: no __version__ = "..." line')
    return match.group(1)


def readme() -> str:
    path = osp.join(HERE, 'README.md')
    if not osp.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


def parse_requirements(fname: str) -> list:
    """Requirement lines of ``fname``, following ``-r other.txt`` includes.

    Comments, blank lines and pip options other than ``-r`` are dropped; version
    specifiers and environment markers are kept as written.
    """
    fpath = osp.join(HERE, fname)
    requirements = []
    with open(fpath, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                target = osp.join(osp.dirname(fname), line[3:].strip())
                requirements.extend(parse_requirements(target))
            elif line.startswith('-'):
                raise ValueError(f'{fpath}:{lineno}: unsupported pip option {line!r}')
            else:
                requirements.append(line)
    return requirements


if __name__ == '__main__':
    setup(
        name='cllip_mm',
        version=get_version(),
        description='CLOC (Contrastive Localized Language-Image Pre-training) '
        'on MMEngine / MMCV / MMDetection',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, vision-language, contrastive learning, CLIP, CLOC',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'tests.*',
                                        'benchmarks', 'docs')),
        include_package_data=True,
        python_requires='>=3.8',
        classifiers=[
            'Development Status :: 3 - Alpha',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.11',
        ],
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'all': parse_requirements('requirements.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'build': parse_requirements('requirements/build.txt'),
        },
        zip_safe=False)
