#!/usr/bin/env bash
# The issue's GPU evidence in one device call: `llmdoctor bench` (defaults: both class profiles)
# for yi-6b, then for more presets while time is left (estimator calibration on other shapes),
# writing to $OUT: GPU-MODEL.json per model, GPU-yi-6b.png, one log, nvidia-smi.txt. Commit them
# under benchmark/results/. The device's python3 has torch, transformers, peft, accelerate,
# click, nvidia-ml-py and matplotlib, not bitsandbytes: carry its wheel in .whl/ (ignored by git):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2
#
# then run(command="bash benchmark/gpu_evidence.sh", carry=[".whl"], timeout_s=600).
# MODELS and BUDGET_S (seconds for all the benches) override the defaults; on a machine without
# a GPU the same script runs the CPU path (MODELS=tiny), which is how it is checked before a lease.
set -u -o pipefail
started=$SECONDS
OUT=${OUT:-$PWD/benchmark/results}
MODELS=${MODELS:-yi-6b qwen2.5-1.5b llama-2-7b}
BUDGET_S=${BUDGET_S:-570}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
log="$OUT/bench.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1
gpu=$(python3 -c "
import torch
print(torch.cuda.get_device_name(0).removeprefix('NVIDIA ').replace(' ', '-') if torch.cuda.is_available() else 'CPU')
") || exit 1
python3 -c "import torch, transformers, peft, bitsandbytes as b; print(torch.__version__, transformers.__version__, peft.__version__, b.__version__)" 2>&1 | tee -a "$log"
code=0
for model in $MODELS; do
    left=$((BUDGET_S - (SECONDS - started)))
    if [ "$left" -lt 150 ]; then echo "== $model: skipped, ${left}s left" | tee -a "$log"; continue; fi
    echo "== $model (${left}s left)" | tee -a "$log"
    plot=()
    [ "$model" = "${MODELS%% *}" ] && plot=(--plot "$OUT/$gpu-$model.png")
    t0=$SECONDS
    timeout "$left" python3 -m llmdoctor bench --model "$model" --json "${plot[@]}" > "$OUT/$gpu-$model.json" \
        2> >(tee -a "$log" >&2)
    rc=$?
    echo "== $model: exit $rc after $((SECONDS - t0))s" | tee -a "$log"
    [ "$model" = "${MODELS%% *}" ] && code=$rc
    python3 - "$OUT/$gpu-$model.json" <<'PY' 2>&1 | tee -a "$log"
import json, sys
from llmdoctor.benchmark import run
try:
    print(run.text(json.load(open(sys.argv[1])), width=130))
except ValueError as exc:
    print(f"no JSON: {exc}")
PY
done
exit $code
