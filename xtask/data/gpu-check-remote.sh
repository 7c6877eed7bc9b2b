#!/usr/bin/env bash
# Runs `xtask gpu-check` on a GPU machine that has the checkout, python3 with torch and
# transformers, and NVRTC, but no Rust toolchain.
#
#   here:  cargo xtask build-cuda --bundle          # target/cuda/gpu-bundle.tar.xz (~40 MB)
#          cp target/cuda/gpu-bundle.tar.xz SOMEWHERE_THAT_TRAVELS/
#   there: bash xtask/data/gpu-check-remote.sh BUNDLE CORPUS.jsonl[.xz] OUT_DIR
#
# The parity test binaries read their fixtures at the checkout path they were built in
# (/work/main here); the script links that path to this checkout when it differs.
set -euo pipefail
bundle=$1 corpus=$2 out=$3
root=$(pwd)
built_at=/work/main
if [ "$(readlink -f "$built_at" 2>/dev/null)" != "$root" ]; then
    mkdir -p "$(dirname "$built_at")"
    [ -e "$built_at" ] || ln -s "$root" "$built_at"
fi
mkdir -p "$out" .gpu
xz -dc "$bundle" | tar xf - -C .gpu
chmod +x .gpu/xtask .gpu/bins/*
case "$corpus" in
    *.xz) xz -dc "$corpus" > .gpu/corpus.jsonl; corpus=.gpu/corpus.jsonl ;;
esac
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" || true
} > "$out/setup.txt" 2>&1
set -o pipefail
timeout "${GPU_CHECK_TIMEOUT:-540}" .gpu/xtask gpu-check --test-bins .gpu/bins --out "$out" \
    --work "${TMPDIR:-/tmp}/gpu-check-work" --corpus "$corpus" --repeats 10 --parity-timeout 200 \
    2>&1 | tee "$out/run.log"
