#!/usr/bin/env bash
# Usage: [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#     tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# MMDetection's tools/slurm_train.sh: srun starts GPUS processes (one per GPU,
# GPUS_PER_NODE per node); tools/train.py --launcher slurm reads the rank, world size
# and first node from SLURM's variables (MASTER_PORT: 29500 unless set).
# Multi-node guide (batch sizes, --auto-scale-lr, DDP vs FSDP): docs/distributed.md.

if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi

set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-"python"}
PY_ARGS=("${@:5}")

# SRUN_ARGS is split into words on purpose (several srun options in one variable)
# shellcheck disable=SC2086
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    $PYTHON -u "$(dirname "$0")/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher="slurm" \
    "${PY_ARGS[@]}"
