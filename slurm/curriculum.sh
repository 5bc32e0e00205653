#!/usr/bin/env bash
# Train one specialist through the whole curriculum on Slurm: multi-node, resumable, requeued on preemption.
#
#   sbatch slurm/curriculum.sh tm [KEY=VALUE ...]        # or: SPECIALIST=tm sbatch slurm/curriculum.sh
#   sbatch slurm/curriculum.sh tm --stage 1              # one stage, from its own dataset's shards alone
#
# srun starts one torchrun per node; torchrun rendezvous (c10d) on the first host of the allocation.
# Preemption: Slurm sends SIGUSR1 to this batch shell 180 s before the end (--signal=B:USR1@180) or SIGTERM
# on preemption. The trap below has Slurm send SIGTERM to every task of the job step on every node
# (`scancel --signal=TERM` signals all steps but this batch shell; a SIGTERM to srun itself would make it
# kill the step). Every rank checkpoints, the workers exit 75 and write RUN_DIR/<specialist>/preempted.json,
# and this script requeues the job, which resumes (--resume auto). torchrun waits SHUTDOWN_TIMEOUT seconds
# (default 150, inside the 180 s lead time) for its workers before it kills them.
#
# Without GPUs in the cluster's gres config (a CPU cluster), one process per node with the task's CPUs:
#   sbatch --gpus-per-node=0 --cpus-per-task=32 slurm/curriculum.sh tm
#
# Settings (environment): SHARDS, RUN_DIR, CONFIG, PYTHON, SHUTDOWN_TIMEOUT, MASTER_PORT (default: 20000 + the
# job id modulo 20000) and GPUS_PER_NODE, the processes per node (default: the node's GPUs, or 1 without GPUs).
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
config="${CONFIG:-default}"  # the packaged production config, or a YAML path
python="${PYTHON:-$repo/.venv/bin/python}"
procs_per_node="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-0}}"
(( procs_per_node > 0 )) || procs_per_node=1
# A port per job: array tasks (all_specialists.sh) that share a node must not share a rendezvous.
port="${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}"
shutdown_timeout="${SHUTDOWN_TIMEOUT:-150}"
nodes="${SLURM_JOB_NUM_NODES:-1}"
mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")  # no `| head`: SIGPIPE under pipefail
head_node="${hosts[0]}"

echo "job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}): $specialist on $nodes node(s) x $procs_per_node process(es), rendezvous $head_node:$port"

preempted=0
step_pid=""
# shellcheck disable=SC2329  # invoked by the trap below
on_signal() {
  echo "preemption signal received: asking $specialist to checkpoint"
  preempted=1
  scancel --signal=TERM "$SLURM_JOB_ID" || true
}
trap on_signal USR1 TERM

srun --kill-on-bad-exit=1 --ntasks-per-node=1 \
  "$python" -m torch.distributed.run \
    --nnodes="$nodes" --nproc_per_node="$procs_per_node" --shutdown-timeout="$shutdown_timeout" \
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

if [[ -f "$run_dir/$specialist/preempted.json" ]]; then
  echo "checkpoint written; requeueing job ${SLURM_JOB_ID}"
elif [[ "$preempted" == 1 ]]; then
  echo "preempted before a checkpoint was written; requeueing job ${SLURM_JOB_ID} to resume from the last one" >&2
fi
if [[ "$preempted" == 1 || -f "$run_dir/$specialist/preempted.json" ]]; then
  scontrol requeue "$SLURM_JOB_ID"
  exit "$EXIT_PREEMPTED"
fi
exit "$status"
