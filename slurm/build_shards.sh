#!/usr/bin/env bash
# Build every shard set of FF++, Celeb-DF v2 and DFDC as one Slurm job array, from the repository root:
#
#   RAW=/data/raw SHARDS=/data/shards sbatch --array=0-55 slurm/build_shards.sh
#
# Array task K < DFDC_CHUNKS builds DFDC chunk K (dfdc_train_part_K, its train/val/test); the next three tasks
# build the FF++ train, val and test splits, the three after them Celeb-DF's. With DFDC_CHUNKS=50 (the full
# DFDC), that is tasks 0-55. RAW holds FaceForensics++/, Celeb-DF-v2/ and DFDC/ in their official layouts.
# Two more tasks build the evaluation-only datasets where they were downloaded: FF++'s DeepFakeDetection
# (task 56 with 50 chunks) and the DFDC public test set in RAW/DFDC/test (task 57): --array=0-57.
# Every task is resumable: resubmit the same array after a failure and finished work is skipped.
#
# Environment: RAW, SHARDS (required); DFDC_CHUNKS (default 50); CONFIG (default: default, the packaged
# production config; or a YAML path); PYTHON (default .venv/bin/python).
#
#SBATCH --job-name=interceptor-shards
#SBATCH --cpus-per-task=16
#SBATCH --mem=48G
#SBATCH --time=24:00:00
#SBATCH --output=shards-%A_%a.log

set -euo pipefail

RAW=${RAW:?set RAW to the directory holding FaceForensics++/, Celeb-DF-v2/ and DFDC/}
SHARDS=${SHARDS:?set SHARDS to the output directory}
DFDC_CHUNKS=${DFDC_CHUNKS:-50}
CONFIG=${CONFIG:-default}
PYTHON=${PYTHON:-.venv/bin/python}
TASK=${SLURM_ARRAY_TASK_ID:?submit this script as a job array (sbatch --array=...)}
WORKERS=${SLURM_CPUS_PER_TASK:-$(nproc)}

cd "${SLURM_SUBMIT_DIR:-.}"

splits=(train val test)
if (( TASK < DFDC_CHUNKS )); then
    args=(dfdc --root "$RAW/DFDC" --out "$SHARDS/dfdc" --chunk "$TASK")
elif (( TASK < DFDC_CHUNKS + 3 )); then
    args=(ffpp --root "$RAW/FaceForensics++" --out "$SHARDS/ffpp" --split "${splits[TASK - DFDC_CHUNKS]}")
elif (( TASK < DFDC_CHUNKS + 6 )); then
    args=(celebdf --root "$RAW/Celeb-DF-v2" --out "$SHARDS/celebdf" --split "${splits[TASK - DFDC_CHUNKS - 3]}")
elif (( TASK == DFDC_CHUNKS + 6 )); then
    args=(dfd --root "$RAW/FaceForensics++" --out "$SHARDS/dfd")
elif (( TASK == DFDC_CHUNKS + 7 )); then
    args=(dfdc_test --root "$RAW/DFDC/test" --out "$SHARDS/dfdc_test")
else
    echo "array task $TASK: nothing to build (use --array=0-$((DFDC_CHUNKS + 5)), or 0-$((DFDC_CHUNKS + 7)) with DFD and the DFDC test set)" >&2
    exit 1
fi

echo "task $TASK on $(hostname): shards/build.py ${args[*]} with $WORKERS workers"
exec "$PYTHON" shards/build.py "${args[@]}" --workers "$WORKERS" --config "$CONFIG"
