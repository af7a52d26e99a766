#!/usr/bin/env bash
# Install cllip_mm and its dependencies into the current Python environment.
#
#   bash tools/install.sh            # uses `python`
#   PYTHON=python3.11 bash tools/install.sh
#
# Idempotent: every step first checks whether it is already done (imports and
# versions) and skips itself, so a re-run on an installed machine takes seconds.
# Steps: torch (CPU 2.13.0 unless a torch is importable) -> mmengine & friends ->
# mmcv 2.1.0 built from source with its C++ ops (only if `mmcv.ops` is unusable)
# -> mmdet 3.3.0, transformers, tokenizers, ... -> cllip_mm in editable mode ->
# verification (exits non-zero with a message if anything is missing).
set -euo pipefail

PYTHON=${PYTHON:-python}
PIP=("$PYTHON" -m pip)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
MMCV_VERSION=2.1.0

log() { echo "[install] $*"; }
die() { echo "[install] ERROR: $*" >&2; exit 1; }

# Print the requirement specs (arguments) that the environment does not satisfy.
missing() {
    "$PYTHON" - "$@" <<'PY'
import sys
from importlib import metadata
try:
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        print(spec)
        continue
    if not req.specifier.contains(version, prereleases=True):
        print(spec)
PY
}

# pip-install the given specs that are not satisfied yet.
pip_install_missing() {
    local out todo
    out=$(missing "$@")
    if [ -z "$out" ]; then
        log "already satisfied: $*"
    else
        mapfile -t todo <<<"$out"
        log "pip install ${todo[*]}"
        "${PIP[@]}" install "${todo[@]}"
    fi
}

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 8), sys.version' \
    || die "$PYTHON is not Python >= 3.8"
"${PIP[@]}" --version >/dev/null || die "$PYTHON -m pip does not work"

# 1. torch: keep whatever torch is importable (CPU or CUDA); else the CPU wheel.
if "$PYTHON" -c 'import torch' 2>/dev/null; then
    log "torch $("$PYTHON" -c 'import torch; print(torch.__version__)') already installed"
else
    log "pip install torch==$TORCH_VERSION"
    "${PIP[@]}" install "torch==$TORCH_VERSION"
fi

# 2. mmengine and the runtime dependencies of mmcv (so the mmcv build adds nothing).
pip_install_missing 'mmengine>=0.10.7,<1.0' addict yapf pyyaml packaging Pillow \
    numpy matplotlib ninja wheel
# any OpenCV build will do (mmcv accepts opencv-python or opencv-python-headless)
if "$PYTHON" -c 'import cv2' 2>/dev/null; then
    log "OpenCV already installed"
else
    log "pip install opencv-python"
    "${PIP[@]}" install opencv-python
fi

# 3. mmcv with compiled ops. mmcv's setup.py imports pkg_resources, which
#    setuptools>=81 removed while torch 2.13 needs setuptools>=77: build with
#    setuptools<70 and restore it afterwards (also on failure). pip caches the
#    built wheel, so a reinstall does not compile again.
# mmdet 3.3.0 needs mmcv>=2.0.0rc4,<2.2.0
if "$PYTHON" -c 'import mmcv, mmcv.ops; mmcv.ops.roi_align' 2>/dev/null \
        && [ -z "$(missing 'mmcv>=2.0.0rc4,<2.2.0')" ]; then
    log "mmcv $("$PYTHON" -c 'import mmcv; print(mmcv.__version__)') with ops already installed"
else
    command -v c++ >/dev/null || command -v g++ >/dev/null || {
        command -v apt-get >/dev/null || die "no C++ compiler to build mmcv ops"
        log "installing g++ to build mmcv ops"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends g++
    }
    mmcv_args=()
    if "$PYTHON" -c 'import mmcv' 2>/dev/null; then
        # an mmcv without (working) ops or of another version: rebuild, bypassing
        # a cached wheel
        mmcv_args=(--force-reinstall --no-deps --no-cache-dir)
    fi
    restore_setuptools() {
        log "restoring setuptools>=77,<81"
        "${PIP[@]}" install -q 'setuptools>=77,<81'
    }
    trap restore_setuptools EXIT
    "${PIP[@]}" install -q 'setuptools<70'
    log "building mmcv==$MMCV_VERSION with ops (MAX_JOBS=$(nproc); ~10 min on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS=$(nproc) "${PIP[@]}" install --no-build-isolation \
        "${mmcv_args[@]}" "mmcv==$MMCV_VERSION"
    restore_setuptools
    trap - EXIT
fi
# torch 2.13 needs setuptools>=77; mmengine resolves `mmdet::` config bases through
# pkg_resources, which setuptools 81 removed.
pip_install_missing 'setuptools>=77,<81'

# 4. mmdet and the rest of requirements/runtime.txt + tests.txt.
pip_install_missing mmdet==3.3.0 transformers tokenizers safetensors pycocotools nltk pytest \
    jsonlines lvis emoji
# the linter of .ci/run and .pre-commit-config.yaml (config: ruff.toml)
pip_install_missing 'ruff>=0.5'

# 5. cllip_mm itself, editable (its dependencies are all installed above).
if (cd / && CLLIP_ROOT="$ROOT" "$PYTHON" -c "import os, sys, cllip_mm
here = os.path.realpath(os.path.dirname(cllip_mm.__file__))
sys.exit(here != os.path.realpath(os.path.join(os.environ['CLLIP_ROOT'], 'cllip_mm')))") \
        2>/dev/null; then
    log "cllip_mm already installed from $ROOT"
else
    log "pip install -e $ROOT"
    "${PIP[@]}" install -e "$ROOT" --no-build-isolation --no-deps --use-pep517
fi

# 6. Verify, from outside the repo so that the installed package is what is tested.
log "verifying"
(cd / && "$PYTHON" - <<'PY') || die "verification failed (see the traceback above)"
import torch
import mmcv
import mmengine
from mmcv.ops import RoIAlign, nms, roi_align  # noqa: F401  compiled ops
import mmdet
import mmdet.models  # noqa: F401
import cllip_mm
print(f'[install] OK: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__} (ops), mmdet {mmdet.__version__}, '
      f'cllip_mm {cllip_mm.__version__} at {cllip_mm.__file__}')
PY
