#!/usr/bin/env bash
# Prepare benchmarks/gpu/run_benchmarks.sh's payload, on the development machine (network needed once).
#
#     bash benchmarks/gpu/prepare.sh
#
# Writes benchmarks/gpu/payload/ (about 3 MB, git-ignored through .git/info/exclude, not .gitignore,
# so that the device runner's `carry` can name it):
#   photos/  full-size JPEGs (375 x 500 .. 768 x 1024, quality 90) cut from the photos embedded in
#            scikit-image and scikit-learn (benchmarks/bench_input.py's make_photos)
#   wheels/  what the GPU machine lacks, pure-Python wheels: hydra-core, omegaconf 2.3.0,
#            antlr4-python3-runtime 4.9.3 (built into a wheel here from its sdist), rich and its deps
#   imagenette/  for suite=imagenette_gpu (run_suite.sh): an even subset of ../shared/data/imagenette,
#            250 train and 40 val photos per class (2,900 JPEGs, about 40 MB), near-greyscale photos
#            (near_grayscale.txt) left out; N_TRAIN / N_VAL per class change it
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
PAYLOAD=benchmarks/gpu/payload
mkdir -p "$PAYLOAD/wheels"

exclude=.git/info/exclude
mkdir -p "$(dirname "$exclude")"
grep -qxF "/$PAYLOAD/" "$exclude" 2>/dev/null || echo "/$PAYLOAD/" >> "$exclude"

"$PY" -c "from benchmarks.bench_input import make_photos; make_photos('$PAYLOAD/photos', n=${N_PHOTOS:-48})"
"$PY" -m benchmarks.gpu_subset --src "${IMAGENETTE:-../shared/data/imagenette}" --dst "$PAYLOAD/imagenette" \
    --train "${N_TRAIN:-250}" --val "${N_VAL:-40}"

HYDRA_VERSION=$("$PY" -c "import importlib.metadata as m; print(m.version('hydra-core'))")
"$PY" -m pip download --no-deps -d "$PAYLOAD/wheels" \
    "hydra-core==$HYDRA_VERSION" omegaconf==2.3.0 antlr4-python3-runtime==4.9.3 \
    rich markdown-it-py mdurl pygments
for sdist in "$PAYLOAD"/wheels/*.tar.gz; do  # antlr4 ships an sdist only: a wheel installs without a build
    [ -e "$sdist" ] || continue
    "$PY" -m pip wheel --no-deps -w "$PAYLOAD/wheels" "$sdist" && rm "$sdist"
done
ls -la "$PAYLOAD/wheels"
du -sh "$PAYLOAD"
echo "payload ready: run bash benchmarks/gpu/run_benchmarks.sh on the GPU machine, carrying $PAYLOAD"
