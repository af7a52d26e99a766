#!/usr/bin/env bash
# Install cllip_mm and its dependencies into the current Python environment, for the
# CPU or for CUDA GPUs (docs/install.md).
#
#   bash tools/install.sh                      # uses `python`; CPU or CUDA detected
#   PYTHON=python3.11 bash tools/install.sh
#   CLLIP_DEVICE=cuda bash tools/install.sh    # force the CUDA build (e.g. a container
#                                              # build without a GPU); or cpu
#
# Device: CLLIP_DEVICE=auto (default) picks `cuda` when `nvidia-smi -L` lists a GPU, else
# `cpu`; nvcc alone (a toolkit without a GPU) does not make a CUDA machine.
#
# Idempotent: every step first checks whether it is already done (imports, versions,
# a real roi_align / nms call on the device) and skips itself, so a re-run on an
# installed machine takes seconds. Steps: torch (CPU: 2.13.0 from the CPU wheel index;
# CUDA: a CUDA wheel matching the toolkit's nvcc; an importable torch is kept) ->
# mmengine & friends -> mmcv 2.1.0 built from source with its C++ (CPU) or C++ and CUDA
# ops, checked by `cllip_mm/utils/check_mmcv_ops.py` on the device -> mmdet 3.3.0,
# transformers, ... -> cllip_mm in editable mode -> verification (exits non-zero with a
# message saying what is wrong and what to do).
#
# Environment (all optional):
#   CLLIP_DEVICE          auto | cpu | cuda
#   CLLIP_APT=0           never run apt-get (it is only run, announced first, to install
#                         g++ when no C++ compiler exists; with sudo when not root)
#   TORCH_VERSION         torch version to install when none is importable (CPU default
#                         2.13.0; CUDA default: the newest on the wheel index)
#   TORCH_INDEX_URL       wheel index for torch (default: download.pytorch.org/whl/cpu,
#                         or .../cuXYZ matching nvcc's CUDA version)
#   CUDA_HOME             the CUDA toolkit to compile mmcv with (default: nvcc's)
#   TORCH_CUDA_ARCH_LIST  GPU architectures to compile for (default: those of the GPUs
#                         nvidia-smi lists, e.g. "9.0"; without a GPU torch builds for
#                         every architecture it knows, which takes much longer)
#   MMCV_FIND_LINKS       install a prebuilt mmcv wheel from this page instead of
#                         compiling (OpenMMLab's, e.g.
#                         https://download.openmmlab.com/mmcv/dist/cu121/torch2.1/index.html;
#                         only for the torch / CUDA pairs it lists)
#
# Sourcing the file (`source tools/install.sh`) only defines the functions (tests).
set -euo pipefail

PYTHON=${PYTHON:-python}
PIP=("$PYTHON" -m pip)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MMCV_VERSION=2.1.0
CPU_TORCH_VERSION=2.13.0
# CUDA versions that have a torch wheel index download.pytorch.org/whl/cuXYZ (torch 2.x);
# a toolkit in between uses the nearest lower one of its major version (torch's
# extension builder accepts a minor-version mismatch, not a major one).
TORCH_CUDA_VERSIONS="11.8 12.1 12.4 12.6 12.8 12.9 13.0"
CHECK_OPS="$ROOT/cllip_mm/utils/check_mmcv_ops.py"
DEFAULT_CUDA_HOME=${DEFAULT_CUDA_HOME:-/usr/local/cuda}

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

# ---------------------------------------------------------------- the machine
# Number of GPUs `nvidia-smi -L` lists (0 without nvidia-smi or a driver).
gpu_count() {
    local n=0
    if command -v nvidia-smi >/dev/null 2>&1; then
        n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    fi
    echo "${n:-0}"
}

# cpu or cuda: CLLIP_DEVICE if set (auto: cuda when a GPU is listed).
detect_device() {
    case "${CLLIP_DEVICE:-auto}" in
        cpu | cuda) echo "$CLLIP_DEVICE" ;;
        auto)
            if [ "$(gpu_count)" -gt 0 ]; then echo cuda; else echo cpu; fi ;;
        *) die "CLLIP_DEVICE=$CLLIP_DEVICE: use auto, cpu or cuda" ;;
    esac
}

# Path of the nvcc to compile with: $CUDA_HOME/bin/nvcc, nvcc on PATH, or
# $DEFAULT_CUDA_HOME/bin/nvcc; nothing if none exists.
find_nvcc() {
    if [ -n "${CUDA_HOME:-}" ]; then
        if [ -x "$CUDA_HOME/bin/nvcc" ]; then echo "$CUDA_HOME/bin/nvcc"; fi
    elif command -v nvcc >/dev/null 2>&1; then
        command -v nvcc
    elif [ -x "$DEFAULT_CUDA_HOME/bin/nvcc" ]; then
        echo "$DEFAULT_CUDA_HOME/bin/nvcc"
    fi
}

# The toolkit folder of nvcc $1 (the one with include/cuda_runtime.h): $CUDA_HOME, or
# two levels above nvcc's real path, or $DEFAULT_CUDA_HOME (nvcc on PATH may be a
# wrapper script, e.g. /usr/local/bin/nvcc).
cuda_home() {
    local home
    for home in "${CUDA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$1")")")" \
            "$DEFAULT_CUDA_HOME"; do
        if [ -n "$home" ] && [ -e "$home/include/cuda_runtime.h" ]; then
            echo "$home"
            return 0
        fi
    done
    die "cannot find the CUDA toolkit of $1 (no include/cuda_runtime.h in \
${CUDA_HOME:-\$CUDA_HOME unset}, beside nvcc or in $DEFAULT_CUDA_HOME): set CUDA_HOME"
}

# "12.4" from `nvcc --version` ("Cuda compilation tools, release 12.4, V12.4.131").
nvcc_version() {
    "$1" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n1
}

# The torch wheel tag for a CUDA version: the highest of TORCH_CUDA_VERSIONS of the same
# major version that is not above it (12.3 -> cu121, 12.4 -> cu124, 11.8 -> cu118).
torch_cuda_tag() {
    local want=$1 best='' v
    local major=${want%%.*} minor=${want#*.}
    for v in $TORCH_CUDA_VERSIONS; do
        if [ "${v%%.*}" = "$major" ] && [ "${v#*.}" -le "$minor" ]; then best=$v; fi
    done
    [ -n "$best" ] || die "no torch wheel index for CUDA $want (torch 2.x has: \
$TORCH_CUDA_VERSIONS); install a CUDA toolkit of one of these major versions, or set \
TORCH_INDEX_URL to a wheel index built for your CUDA"
    echo "cu${best/./}"
}

# "8.0;9.0": the compute capabilities of the listed GPUs (nothing if unknown).
gpu_arch_list() {
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
        | grep -E '^[0-9]+\.[0-9]+$' | sort -u | paste -sd';' - || true
}

# A C++ compiler for mmcv's ops; installs g++ with apt-get (announced first) unless
# CLLIP_APT=0.
ensure_compiler() {
    if command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1; then
        return 0
    fi
    local sudo=()
    if [ "${CLLIP_APT:-1}" = 0 ]; then
        die "no C++ compiler (c++ / g++) to build mmcv's ops, and CLLIP_APT=0 forbids \
apt-get: install one (e.g. \`sudo apt-get install g++\`, \`conda install gxx_linux-64\`) \
and re-run"
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "no C++ compiler (c++ / g++) to build mmcv's ops and no apt-get: install one and re-run"
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 \
            || die "no C++ compiler and not root (no sudo) to apt-get one: install g++ and re-run"
        sudo=(sudo)
    fi
    log "no C++ compiler found; about to run: ${sudo[*]:+${sudo[*]} }apt-get update && \
${sudo[*]:+${sudo[*]} }apt-get install -y --no-install-recommends g++ (set CLLIP_APT=0 to stop \
here instead and install a compiler yourself)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends g++
}

# CHECK_ARGS, the arguments of the ops check for device $1 with $2 GPUs: a CUDA build
# without a GPU (e.g. a container build) can only check what was compiled.
set_check_args() {
    if [ "$1" = cuda ] && [ "$2" -gt 0 ]; then
        CHECK_ARGS=(--device cuda)
    elif [ "$1" = cuda ]; then
        CHECK_ARGS=(--cuda-build-only)
    else
        CHECK_ARGS=(--device cpu)
    fi
}

# Run the ops check (cllip_mm/utils/check_mmcv_ops.py, by path: it needs only torch and
# mmcv) with the arguments of CHECK_ARGS; quiet with --quiet.
check_ops() {
    if [ "${1:-}" = --quiet ]; then
        "$PYTHON" "$CHECK_OPS" "${CHECK_ARGS[@]}" >/dev/null 2>&1
    else
        "$PYTHON" "$CHECK_OPS" "${CHECK_ARGS[@]}"
    fi
}

# ---------------------------------------------------------------- the steps
# 1. torch: keep an importable one (a CPU torch on a CUDA machine is an error);
#    else the CPU wheel or the CUDA wheel of nvcc's version.
install_torch() {
    local device=$1 index version nvcc cuda torch_cuda
    if torch_cuda=$("$PYTHON" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null); then
        version=$("$PYTHON" -c 'import torch; print(torch.__version__)')
        if [ "$device" = cuda ] && [ -z "$torch_cuda" ]; then
            die "torch $version is a CPU-only build, but this is a CUDA install \
(CLLIP_DEVICE=${CLLIP_DEVICE:-auto}, $(gpu_count) GPU(s) listed). Replace it: \
\`$PYTHON -m pip uninstall -y torch\` and re-run (installs the CUDA wheel matching nvcc), \
or install a CPU-only environment with CLLIP_DEVICE=cpu"
        fi
        log "torch $version${torch_cuda:+ (CUDA $torch_cuda)} already installed"
        return 0
    fi
    if [ "$device" = cpu ]; then
        index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
        version=${TORCH_VERSION:-$CPU_TORCH_VERSION}
    elif [ -n "${TORCH_INDEX_URL:-}" ]; then
        index=$TORCH_INDEX_URL
        version=${TORCH_VERSION:-}
    else
        nvcc=$(find_nvcc)
        [ -n "$nvcc" ] || die "a CUDA install needs the CUDA toolkit (nvcc) to compile mmcv's \
CUDA ops and to pick the matching torch wheel, and none was found (\$CUDA_HOME/bin, PATH, \
$DEFAULT_CUDA_HOME/bin): install the toolkit (11.8 or 12.x) or set CUDA_HOME; or set \
TORCH_INDEX_URL and MMCV_FIND_LINKS to use prebuilt wheels (docs/install.md)"
        cuda=$(nvcc_version "$nvcc")
        index="https://download.pytorch.org/whl/$(torch_cuda_tag "$cuda")"
        version=${TORCH_VERSION:-}
        log "nvcc $nvcc is CUDA $cuda: torch from $index"
    fi
    log "pip install torch${version:+==$version} --index-url $index"
    "${PIP[@]}" install "torch${version:+==$version}" --index-url "$index"
}

# 3. mmcv with compiled ops, skipped when the ops check passes on the device.
install_mmcv() {
    local device=$1 nvcc cuda home torch_cuda arch mmcv_args=() build_env=(MMCV_WITH_OPS=1)
    if check_ops --quiet && [ -z "$(missing 'mmcv>=2.0.0rc4,<2.2.0')" ]; then
        log "mmcv $("$PYTHON" -c 'import mmcv; print(mmcv.__version__)') with $device ops already installed"
        return 0
    fi
    if "$PYTHON" -c 'import mmcv' 2>/dev/null; then
        # an mmcv without (working) ops for this device or of another version: rebuild,
        # bypassing a cached wheel
        log "the installed mmcv fails the $device ops check: reinstalling it"
        mmcv_args=(--force-reinstall --no-deps --no-cache-dir)
    fi
    if [ -n "${MMCV_FIND_LINKS:-}" ]; then
        log "pip install mmcv==$MMCV_VERSION (prebuilt) -f $MMCV_FIND_LINKS"
        "${PIP[@]}" install "${mmcv_args[@]}" --only-binary mmcv -f "$MMCV_FIND_LINKS" \
            "mmcv==$MMCV_VERSION"
    else
        ensure_compiler
        if [ "$device" = cuda ]; then
            nvcc=$(find_nvcc)
            [ -n "$nvcc" ] || die "building mmcv's CUDA ops needs the CUDA toolkit (nvcc), \
and none was found (\$CUDA_HOME/bin, PATH, $DEFAULT_CUDA_HOME/bin): install the toolkit of \
torch's CUDA major version or set CUDA_HOME; or set MMCV_FIND_LINKS (docs/install.md)"
            cuda=$(nvcc_version "$nvcc")
            home=$(cuda_home "$nvcc")
            torch_cuda=$("$PYTHON" -c 'import torch; print(torch.version.cuda or "")')
            [ "${cuda%%.*}" = "${torch_cuda%%.*}" ] || die "nvcc ($nvcc) is CUDA $cuda but \
torch is built for CUDA ${torch_cuda:-none}: mmcv's CUDA ops must be compiled with the same \
CUDA major version. Point CUDA_HOME at a $torch_cuda toolkit, or reinstall torch for CUDA \
$cuda (pip uninstall -y torch, then re-run)"
            arch=${TORCH_CUDA_ARCH_LIST:-$(gpu_arch_list)}
            if [ -n "$arch" ]; then
                build_env+=(TORCH_CUDA_ARCH_LIST="$arch")
            else
                log "hint: set TORCH_CUDA_ARCH_LIST (e.g. '8.0;9.0' for A100 + H100) to \
compile for your GPUs only; without it the build covers every architecture torch knows"
            fi
            build_env+=(FORCE_CUDA=1 CUDA_HOME="$home")
            # a cached mmcv wheel may be a CPU build: always compile
            mmcv_args=(--force-reinstall --no-deps --no-cache-dir)
        fi
        # mmcv's setup.py imports pkg_resources, which setuptools>=81 removed while torch
        # 2.13 needs setuptools>=77: build with setuptools<70 and restore it afterwards
        # (also on failure).
        restore_setuptools() {
            log "restoring setuptools>=77,<81"
            "${PIP[@]}" install -q 'setuptools>=77,<81'
        }
        trap restore_setuptools EXIT
        "${PIP[@]}" install -q 'setuptools<70'
        log "building mmcv==$MMCV_VERSION with $device ops: ${build_env[*]} MAX_JOBS=$(nproc) \
(~10 min on 2 cores for the CPU ops; the CUDA ops take longer)"
        env "${build_env[@]}" MAX_JOBS="$(nproc)" "${PIP[@]}" install --no-build-isolation \
            "${mmcv_args[@]}" "mmcv==$MMCV_VERSION"
        restore_setuptools
        trap - EXIT
    fi
    check_ops || die "mmcv==$MMCV_VERSION was installed but its $device ops fail the check \
above"
}

main() {
    local device gpus
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 8), sys.version' \
        || die "$PYTHON is not Python >= 3.8"
    "${PIP[@]}" --version >/dev/null || die "$PYTHON -m pip does not work"

    device=$(detect_device)
    gpus=$(gpu_count)
    set_check_args "$device" "$gpus"
    log "device: $device (CLLIP_DEVICE=${CLLIP_DEVICE:-auto}, $gpus GPU(s) listed by nvidia-smi)"
    if [ "$device" = cpu ] && [ "$gpus" = 0 ] && [ -n "$(find_nvcc)" ]; then
        log "note: a CUDA toolkit ($(find_nvcc)) but no GPU: installing for the CPU; set \
CLLIP_DEVICE=cuda to build the CUDA ops anyway"
    fi

    # 1. torch
    install_torch "$device"

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

    # 3. mmcv with compiled ops for the device (mmdet 3.3.0 needs mmcv>=2.0.0rc4,<2.2.0)
    install_mmcv "$device"
    # torch 2.13 needs setuptools>=77; mmengine resolves `mmdet::` config bases through
    # pkg_resources, which setuptools 81 removed.
    pip_install_missing 'setuptools>=77,<81'

    # 4. mmdet and the rest of requirements/runtime.txt + tests.txt.
    pip_install_missing mmdet==3.3.0 transformers tokenizers safetensors pycocotools nltk \
        pytest pytest-xdist jsonlines lvis emoji
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

    # 6. Verify, from outside the repo so that the installed package is what is tested:
    #    imports, then mmcv's roi_align / nms called on the device against a reference.
    log "verifying"
    (cd / && "$PYTHON" - <<'PY') || die "verification failed (see the traceback above)"
import torch
import mmcv
import mmengine
import mmdet
import mmdet.models  # noqa: F401
import cllip_mm
print(f'[install] imports OK: torch {torch.__version__}, mmengine {mmengine.__version__}, '
      f'mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, '
      f'cllip_mm {cllip_mm.__version__} at {cllip_mm.__file__}')
PY
    (cd / && "$PYTHON" -m cllip_mm.utils.check_mmcv_ops "${CHECK_ARGS[@]}") \
        || die "mmcv's $device ops fail the check above"
    log "OK ($device)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
