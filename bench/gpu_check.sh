#!/usr/bin/env bash
# The GPU check in one command, on a machine with a GPU and no network, in under 10 minutes:
#
#   make gpu-carry                 here, once: .gpu/ holds wheels for the CUDA image and the real DFDC sample
#   bash bench/gpu_check.sh [OPTIONS]   on the GPU machine, from the repository root, .gpu/ carried along
#
# It installs from .gpu/wheels what the image lacks (deepspeed, webdataset, av and their dependencies), then
# runs bench/gpu_check.py (OPTIONS are its own): per specialist a DeepSpeed FP16 training step of EfficientNet-B4
# at 380 px, batch 32, channels_last, NCCL; the loss scale moving, nothing non-finite; samples/s per GPU against
# 331 img/s (A100); a checkpoint saved and resumed on CUDA; then predict timed on the DFDC sample on the GPU.
# Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CARRY=${GPU_CARRY:-.gpu}
missing=$("$PYTHON" -c 'import importlib.util as u; print(*(m for m in ("deepspeed", "webdataset", "av") if u.find_spec(m) is None))')
if [ -n "$missing" ]; then
    if [ ! -d "$CARRY/wheels" ]; then
        echo "gpu_check: missing $missing and no $CARRY/wheels: run 'make gpu-carry' where there is network, carry $CARRY" >&2
        exit 2
    fi
    echo "installing $missing from $CARRY/wheels"
    "$PYTHON" -m pip install --quiet --no-index --find-links "$CARRY/wheels" $missing
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# predict's face detector (MTCNN) reads its weights from the facenet-pytorch wheel that make gpu-carry fetched
wheels=("$CARRY"/wheels/facenet_pytorch-*.whl)  # the pattern itself when there is none
detector=()
[ -f "${wheels[0]}" ] && detector=(--detector-weights "${wheels[0]}")
exec timeout 540 "$PYTHON" bench/gpu_check.py --videos "${INTERCEPTOR_DFDC_SAMPLE:-$CARRY/dfdc_sample}" \
    "${detector[@]}" "$@"
