#!/usr/bin/env bash
# Data-parallel training on several machines with torchrun: run this script on every node, each with its
# own NODE_RANK (0 on the node at MASTER_ADDR, then 1, 2, ...), all with the same NNODES and MASTER_ADDR.
#
#   node 0:  NODE_RANK=0 MASTER_ADDR=10.0.0.1 uv run --locked bash scripts/torchrun_multinode.sh CONFIG
#   node 1:  NODE_RANK=1 MASTER_ADDR=10.0.0.1 uv run --locked bash scripts/torchrun_multinode.sh CONFIG
#
# with CONFIG e.g. configs/cifar10_resnet18.yaml, on nodes that can reach each other (and the data).
#
# Settings (environment variables):
#   NNODES          number of nodes (default 2)
#   NODE_RANK       this node's rank, 0 .. NNODES-1 (required)
#   MASTER_ADDR     address of node 0, reachable from every node (required)
#   MASTER_PORT     a free TCP port on node 0 (default 29500)
#   NPROC_PER_NODE  processes per node: "gpu" = one per GPU (default), or a number
# Arguments after the config go to the CLI, e.g. --data.batch_size 256 (per process). On CPU-only nodes:
#   NPROC_PER_NODE=1 ... configs/fashion_mnist.yaml --trainer.accelerator cpu --trainer.devices 1
set -euo pipefail

config=${1:?usage: NODE_RANK=<rank> MASTER_ADDR=<node 0> bash scripts/torchrun_multinode.sh CONFIG [CLI args]}
shift
nnodes=${NNODES:-2}

exec python -m torch.distributed.run \
  --nnodes "$nnodes" \
  --nproc-per-node "${NPROC_PER_NODE:-gpu}" \
  --node-rank "${NODE_RANK:?set NODE_RANK to the rank of this node}" \
  --master-addr "${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}" \
  --master-port "${MASTER_PORT:-29500}" \
  -m src.cli fit --config "$config" --config configs/trainer/multinode.yaml --trainer.num_nodes "$nnodes" "$@"
