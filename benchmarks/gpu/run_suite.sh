#!/usr/bin/env bash
# suite=imagenette_gpu on a one-GPU machine in about 10 minutes, self-contained; its store and
# report come back under $OUT (and benchmarks/results/imagenette_gpu/ of the checkout there).
#
# Once, on the development machine (network needed):
#     bash benchmarks/gpu/prepare.sh          # -> benchmarks/gpu/payload/{photos,wheels,imagenette} (git-ignored)
# Then on the GPU machine, from the checkout's root (the checkout travels; ../shared does not):
#     bash benchmarks/gpu/run_suite.sh
# e.g. with this project's device runner: run(command="bash benchmarks/gpu/run_suite.sh",
#     carry=["benchmarks/gpu/payload"], timeout_s=600)   # the suite's own limit: SUITE_S (540 s)
# The suite resumes where it stopped: run it again (on the same warm machine) to finish a cut run.
#
# The GPU machine is expected to have python3 with torch (CUDA), torchvision, lightning,
# torchmetrics, scikit-image, scikit-learn, scipy, matplotlib, numpy and pillow, and no network:
# Hydra, omegaconf, antlr4 and rich come from the payload's wheels (--no-deps, a temporary folder on
# PYTHONPATH; nothing is installed into the machine's Python). The project runs from the checkout.
# DRY_RUN=1 runs the same suite on a CPU at toy sizes (store and report under outputs/suite/imagenette_gpu_dryrun).
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
PAYLOAD=benchmarks/gpu/payload
OUT=${OUT:-}
LOG=${OUT:-/tmp}/gpu_suite.log
exec > >(tee -a "$LOG") 2>&1

[ -d "$PAYLOAD/imagenette/train" ] && ls "$PAYLOAD"/wheels/*.whl >/dev/null 2>&1 \
    || { echo "no $PAYLOAD/imagenette: run bash benchmarks/gpu/prepare.sh first and carry $PAYLOAD"; exit 2; }
if ! "$PYTHON" -c "import hydra, omegaconf" 2>/dev/null; then
    SITE=$(mktemp -d)
    "$PYTHON" -m pip install --quiet --no-deps --no-index --target "$SITE" "$PAYLOAD"/wheels/*.whl || exit 3
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=offline PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

if [ "${DRY_RUN:-0}" = 1 ]; then  # toy sizes: every step of the suite, on a CPU, in a few minutes
    NAME=imagenette_gpu_dryrun
    TOY=(model=alexnet_small model.net.fc_width=32 model.crop=64 model.batch_size=8 model.max_steps=4
         trainer.ckpt_every_n_steps=1 trainer.val_check_interval=2 trainer.limit_val_batches=1 data.num_workers=1
         color.prior_images=16 callbacks.progress_bar=null logger=csv)
    PROBE=("layer=[conv3,conv5]" "seeds=[0,1]" probe.epochs=2 max_images=40 "data.root=$PAYLOAD/imagenette"
           data.name=imagenette_subset num_workers=1)
    AUC=("data.root=$PAYLOAD/imagenette/val" data.max_images=8 net_size=64)
    quoted() { local IFS=,; local q=("${@/#/\'}"); q=("${q[@]/%/\'}"); echo "[${q[*]}]"; }  # ['a=1','b=[2]']
    EXTRA=("suite.pretext_overrides=$(quoted "${TOY[@]}")" suite.methods.colorization_25pct.step=1
           suite.methods.colorization_50pct.step=2 suite.methods.context_encoder_25pct.step=1
           suite.methods.context_encoder_50pct.step=2 "suite.evaluations.linear_probe.overrides=$(quoted "${PROBE[@]}")"
           "suite.evaluations.colorization_auc.overrides=$(quoted "${AUC[@]}")")
else
    NAME=imagenette_gpu
    EXTRA=()
fi
ROOT=outputs/suite/$NAME
t0=$SECONDS
# --foreground: SIGTERM reaches the suite alone (it saves and stops); its DataLoader workers end with it
timeout --foreground --signal=TERM --kill-after=30 "${SUITE_S:-540}" \
    "$PYTHON" benchmarks/suite.py suite=imagenette_gpu root="$ROOT" "${EXTRA[@]}"
rc=$?
echo "=== suite: rc $rc after $((SECONDS - t0)) s (SIGTERM on the time limit: the suite saves and stops; run again to finish)"
RESULTS=benchmarks/results/$NAME
[ "${DRY_RUN:-0}" = 1 ] && RESULTS=$ROOT/report  # a dry run's results stay out of the source tree
mkdir -p "$RESULTS"
if [ -f "$ROOT/results.jsonl" ]; then
    cp "$ROOT/results.jsonl" "$ROOT/invocations.jsonl" "$RESULTS"/ 2>/dev/null
    "$PYTHON" benchmarks/report.py --store "$RESULTS/results.jsonl" || rc=5
fi
if [ -n "$OUT" ]; then
    cp -r "$RESULTS" "$OUT"/ 2>/dev/null || true
    # the pretext runs' done.json (steps, wall time) in one file: the device runner returns 8 files at most
    "$PYTHON" -c 'import json, sys, pathlib
runs = {pathlib.Path(f).parent.name: json.loads(pathlib.Path(f).read_text()) for f in sys.argv[1:]}
print(json.dumps(runs, indent=1))' "$ROOT"/jobs/pretext-*/done.json > "$OUT/pretext_runs.json" 2>/dev/null || true
fi
exit $rc
