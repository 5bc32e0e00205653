#!/usr/bin/env bash
# Every specialist in parallel on Slurm: a job array, one specialist (and its whole curriculum) per task. Task i
# trains the i-th of `interceptor specialists` (the registry: ll bg av cm rr tm, then the config's own).
#
#   sbatch slurm/all_specialists.sh [KEY=VALUE ...]
#   sbatch --array=3 slurm/all_specialists.sh          # only cm
#   sbatch --array=0-$(( $(interceptor specialists --config my.yaml | wc -l) - 1 )) slurm/all_specialists.sh
#                                                      # a config whose specialist_modules add specialists
#
# Each array task runs slurm/curriculum.sh for its specialist, so every task is multi-node capable, resumes
# after preemption and is requeued on its own; a failing specialist does not stop the others.
#SBATCH --job-name=interceptor-specialists
#SBATCH --array=0-5
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@180
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out

set -euo pipefail

repo="${REPO:-${SLURM_SUBMIT_DIR:-$(pwd)}}"
python="${PYTHON:-$repo/.venv/bin/python}"
mapfile -t specialists < <("$python" -m interceptor specialists --config "${CONFIG:-default}")
(( ${#specialists[@]} > 0 )) || { echo "no specialists registered (interceptor specialists failed)" >&2; exit 2; }
index="${SLURM_ARRAY_TASK_ID:?run this script as a Slurm job array (sbatch --array=0-5)}"
if (( index < 0 || index >= ${#specialists[@]} )); then
  echo "array index $index is out of range 0-$(( ${#specialists[@]} - 1 ))" >&2
  exit 2
fi
exec bash "$repo/slurm/curriculum.sh" "${specialists[$index]}" "$@"
