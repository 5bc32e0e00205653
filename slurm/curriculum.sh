#!/usr/bin/env bash
# Train one specialist through the whole curriculum on Slurm: multi-node, resumable, requeued on preemption.
#
#   sbatch slurm/curriculum.sh tm [KEY=VALUE ...]        # or: SPECIALIST=tm sbatch slurm/curriculum.sh
#
# srun starts one torchrun per node; torchrun rendezvous (c10d) on the first host of the allocation.
# Preemption: Slurm sends SIGUSR1 to this batch shell 180 s before the end (--signal=B:USR1@180) or SIGTERM
# on preemption. torchrun forwards SIGTERM (not SIGUSR1) to its workers, so the trap below turns either into
# a SIGTERM for the job step; every rank checkpoints, the workers exit 75 and write
# RUN_DIR/<specialist>/preempted.json, and this script requeues the job, which resumes (--resume auto).
#
# Settings (environment): SHARDS, RUN_DIR, CONFIG, GPUS_PER_NODE, PYTHON, MASTER_PORT.
#SBATCH --job-name=interceptor-curriculum
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@180
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out

set -euo pipefail

EXIT_PREEMPTED=75
specialist="${SPECIALIST:-}"
if [[ $# -gt 0 && "$1" != *=* ]]; then
  specialist="$1"
  shift
fi
if [[ -z "$specialist" ]]; then
  echo "usage: sbatch slurm/curriculum.sh SPECIALIST [KEY=VALUE ...]  (or SPECIALIST=... sbatch ...)" >&2
  exit 2
fi

repo="${REPO:-${SLURM_SUBMIT_DIR:-$(pwd)}}"
shards="${SHARDS:-$repo/data/shards}"
run_dir="${RUN_DIR:-$repo/runs}"
config="${CONFIG:-$repo/configs/default.yaml}"
python="${PYTHON:-$repo/.venv/bin/python}"
gpus_per_node="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}"
port="${MASTER_PORT:-29500}"
nodes="${SLURM_JOB_NUM_NODES:-1}"
mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")  # no `| head`: SIGPIPE under pipefail
head_node="${hosts[0]}"

echo "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}): $specialist on $nodes node(s) x $gpus_per_node, rendezvous $head_node:$port"

preempted=0
step_pid=""
# shellcheck disable=SC2329  # invoked by the trap below
on_signal() {
  echo "preemption signal received: asking $specialist to checkpoint"
  preempted=1
  if [[ -n "$step_pid" ]]; then
    kill -TERM "$step_pid" 2>/dev/null || true
  fi
}
trap on_signal USR1 TERM

srun --kill-on-bad-exit=1 --ntasks-per-node=1 \
  "$python" -m torch.distributed.run \
    --nnodes="$nodes" --nproc_per_node="$gpus_per_node" \
    --rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$head_node:$port" \
    "$repo/launcher/train.py" --specialist "$specialist" --config "$config" \
    --shards "$shards" --run-dir "$run_dir" --resume auto "$@" &
step_pid=$!

status=0
wait "$step_pid" || status=$?
# A trapped signal interrupts `wait`; wait again until the checkpoint is written and the step has ended.
while kill -0 "$step_pid" 2>/dev/null; do
  wait "$step_pid" || status=$?
done

if [[ "$preempted" == 1 || -f "$run_dir/$specialist/preempted.json" ]]; then
  echo "checkpoint written; requeueing job ${SLURM_JOB_ID}"
  scontrol requeue "$SLURM_JOB_ID"
  exit "$EXIT_PREEMPTED"
fi
exit "$status"
