#!/usr/bin/env bash
# The checks that need a GPU, as one short run on a lent GPU machine (no network there).
#
#   benchmarks/gpu_check.sh prepare   here (PyPI, ffmpeg): paper-size features and the
#                                     wheels the GPU image lacks, into .gpucheck/ (git-ignored)
#   benchmarks/gpu_check.sh run       there, with .gpucheck/ beside the tree: installs the
#                                     wheels, then runs, logging each to $OUT (default .gpucheck/out)
#
# What the run measures (README, "Loader"): the GPU tests (nvJPEG decoding against the
# CPU's; bf16 + ZeRO 1 pretraining and finetuning on the GPU against fp32), the
# trainer's pretraining step on the GPU (ViT-B, bf16, the paper's micro-batch 64 and
# ZeRO 1), and the loader at 0, 2 and 8 workers with that measured rate: cores per GPU
# and finish_batch's share of the GPU's time. About 6 minutes on an H200 with 16 cores
# (estimated; never run yet).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.gpucheck
# Wheels for the GPU image's Python (3.12); everything else these checks import is there.
WHEELS="simplejpeg==1.9.0 hjson==3.1.0 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0
        typing-inspection==0.4.2"

case "${1:-}" in
prepare)
    grep -qxF "/$DIR/" .git/info/exclude || echo "/$DIR/" >> .git/info/exclude
    python benchmarks/loader.py --clips 4 --batches 1 --workers 0 --features "$DIR/features"
    rm -rf "$DIR/whl"
    # deepspeed is a source release: built here, its C++ ops are not (nothing of ours needs them)
    DS_BUILD_OPS=0 python -m pip wheel -q --no-deps -w "$DIR/whl" deepspeed==0.19.8
    # shellcheck disable=SC2086
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DIR/whl" $WHEELS
    du -sh "$DIR"
    ;;
run)
    OUT="${OUT:-$DIR/out}"
    mkdir -p "$OUT"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$DIR"/whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 DS_ACCELERATOR=cuda
    nvidia-smi -L | tee "$OUT/gpu.txt"
    python3 -c "import torch, torchvision, deepspeed; print('torch', torch.__version__, 'torchvision',
        torchvision.__version__, 'deepspeed', deepspeed.__version__)" 2>&1 | tail -1 | tee -a "$OUT/gpu.txt" || true
    python3 -m pytest -q -p no:cacheprovider -rs tests/test_dataset.py tests/test_training.py -k "gpu or bf16" 2>&1 \
        | tee "$OUT/gpu_tests.txt" || true
    (cd benchmarks && python3 engine_step.py --profile base --device cuda --precision auto --zero 1 \
        --batch 64 --steps 10 --warmup 3) 2>&1 | grep -v "WARNING\|Warning" | tee "$OUT/engine_step.txt" || true
    rate=$(sed -n 's/^pretraining rate through the engine: \([0-9.]*\) samples.*/\1/p' "$OUT/engine_step.txt")
    python3 benchmarks/loader.py --features "$DIR/features" --batches 20 --workers 0 2 8 \
        ${rate:+--pretrain-rate "$rate"} 2>&1 | tee "$OUT/loader.txt"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
