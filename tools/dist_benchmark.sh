#!/usr/bin/env bash
# Usage: tools/dist_benchmark.sh CONFIG CHECKPOINT GPUS [benchmark.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# PORT=0 on one node: torchrun picks a free port itself (--standalone).

CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-"python"}

if [ "$PORT" = "0" ] && [ "$NNODES" = "1" ]; then
    RDZV=(--standalone)
else
    RDZV=(--nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR"
          --master_port="$PORT")
fi

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
$PYTHON -m torch.distributed.run \
    "${RDZV[@]}" \
    --nproc_per_node="$GPUS" \
    "$(dirname "$0")/benchmark.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}"
