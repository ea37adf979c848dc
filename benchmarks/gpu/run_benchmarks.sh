#!/usr/bin/env bash
# The input and training benchmarks on a one-GPU machine, in a few minutes, self-contained.
#
# Once, on the development machine (network needed):
#     bash benchmarks/gpu/prepare.sh          # -> benchmarks/gpu/payload/{photos,wheels} (git-ignored)
# Then on the GPU machine, from the checkout's root (the checkout travels; ../shared does not):
#     bash benchmarks/gpu/run_benchmarks.sh
# e.g. with this project's device runner: run(command="bash benchmarks/gpu/run_benchmarks.sh",
#     carry=["benchmarks/gpu/payload"], timeout_s=560)   # the steps' limits add up to 510 s
#
# The GPU machine is expected to have python3 with torch (CUDA), torchvision, lightning,
# torchmetrics, scikit-image, scikit-learn, numpy and pillow, and no network: Hydra, omegaconf,
# antlr4 and rich come from the payload's wheels, installed with --no-deps into a temporary folder
# put on PYTHONPATH (nothing is installed into the machine's Python). The project runs from the
# checkout (PYTHONPATH=.), not installed.
#
# Runs, each under a time limit (seconds: INPUT_S, TRAIN_S, COMPILE_S), writing JSON results to
# benchmarks/results/*_gpu*.json and copying them with the log to $OUT (when set):
#   1. bench_input.py: images/s of the input pipeline, decode=cpu vs decode=device (nvJPEG), workers 0 4 8
#   2. bench_train.py: the module's step vs the bare step, plus images/s at batch 256 bf16 channels_last
#   3. bench_train.py --lightning: Trainer.fit (precision auto: bf16-mixed where supported) vs the bare
#      step, batch 80, decode=cpu and decode=device
#   4. bench_train.py --compile: torch.compile of the net vs eager, bf16 autocast
# DRY_RUN=1 runs the same steps on a CPU at toy sizes (results named *_gpu_dryrun*), to check the script.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
PAYLOAD=benchmarks/gpu/payload
OUT=${OUT:-}
LOG=${OUT:-/tmp}/gpu_benchmarks.log
exec > >(tee -a "$LOG") 2>&1

[ -d "$PAYLOAD/photos" ] && ls "$PAYLOAD"/wheels/*.whl >/dev/null 2>&1 \
    || { echo "no $PAYLOAD: run bash benchmarks/gpu/prepare.sh first and carry $PAYLOAD"; exit 2; }
SITE=$(mktemp -d)
"$PYTHON" -m pip install --quiet --no-deps --no-index --target "$SITE" "$PAYLOAD"/wheels/*.whl || exit 3
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=offline PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" - <<'PY' || exit 4
import hydra, lightning, omegaconf, torch, torchvision
print("torch", torch.__version__, "torchvision", torchvision.__version__, "lightning", lightning.__version__,
      "hydra", hydra.__version__, "omegaconf", omegaconf.__version__)
import os
if os.environ.get("DRY_RUN") != "1":
    assert torch.cuda.is_available(), "no CUDA device"
    print(torch.cuda.get_device_name(), "bf16:", torch.cuda.is_bf16_supported())
PY

# sizes: batch, workers, Lightning steps and warm-up, repeats; the dry run's are toy ones
if [ "${DRY_RUN:-0}" = 1 ]; then
    B=4 WORKERS="0 1" STEPS=2 WARM=1 REP=1 TAG=_gpu_dryrun
else
    B=80 WORKERS="0 4 8" STEPS=30 WARM=10 REP=2 TAG=_gpu
fi

status=0
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=20 "$limit" "$@" || { echo "=== $name FAILED or timed out (rc $?)"; status=1; }
    echo "=== $name took $((SECONDS - t0)) s"
}

step input "${INPUT_S:-120}" "$PYTHON" benchmarks/bench_input.py --photos "$PAYLOAD/photos" \
    --workers $WORKERS --batch $B --warmup 6 --batches 10 --repeats $REP --name "bench_input$TAG"
step train_step "${TRAIN_S:-90}" "$PYTHON" benchmarks/bench_train.py --batch $B --repeats $((REP * 2)) \
    --name "bench_train$TAG"
for decode in cpu device; do
    step "lightning_$decode" "${TRAIN_S:-90}" "$PYTHON" benchmarks/bench_train.py --lightning --batch $B \
        --steps $STEPS --warmup $WARM --workers ${WORKERS##* } --decode "$decode" --photos "$PAYLOAD/photos" \
        --name "bench_train_lightning${TAG}_$decode"
done
[ "${DRY_RUN:-0}" = 1 ] || step compile "${COMPILE_S:-120}" "$PYTHON" benchmarks/bench_train.py --compile \
    --batch $B --repeats 10 --precision bf16-mixed --name "bench_train_compile$TAG"

if [ -n "$OUT" ]; then
    cp benchmarks/results/*"$TAG"*.json "$OUT"/ 2>/dev/null || true
fi
ls -la benchmarks/results/*"$TAG"*.json 2>/dev/null
exit $status
