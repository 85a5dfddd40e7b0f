#!/usr/bin/env bash
# The GPU evidence of issue 16 in one device call, writing to $OUT (then commit it under
# benchmark/results/ and run `python -m llmdoctor.benchmark.rejudge benchmark/results/*.json`):
#   1. yi-6b, both decode modes (eager "your stack" and compiled "GPU capability"), both classes:
#      GPU-yi-6b.json and .png;
#   2. yi-6b training at the batch that fills each class (--batch fill): GPU-yi-6b-fill.json, the
#      MFU / HFU the issue asks for at a realistic batch;
#   3. more presets while the budget lasts (GPU-MODEL.json each): the memory model's validation
#      grows with every shape;
# plus bench.log (everything printed), nvidia-smi.txt (name, memory, driver, clocks, power limit).
#
# The device's python3 has torch, transformers, peft, accelerate, click, nvidia-ml-py and
# matplotlib, not bitsandbytes: carry its wheel in .whl/ (ignored by git):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2
#
# then run(command="LLMDOCTOR_COMMIT=$(git rev-parse HEAD) bash benchmark/gpu_evidence.sh",
#          carry=[".whl"], timeout_s=600)   # put the commit into the command text itself
# MODELS (after yi-6b), BUDGET_S (seconds for everything) and EXTRA (bench options) override the
# defaults. Without a GPU the same script runs the CPU path (MODELS=tiny, small shapes), which
# is how it is checked before a lease:  OUT=/tmp/ev bash benchmark/gpu_evidence.sh
set -u -o pipefail
started=$SECONDS
OUT=${OUT:-$PWD/benchmark/results}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-560}
log="$OUT/bench.log"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --upgrade --target /tmp/site . \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
gpu=$(python3 -c "
import torch
print(torch.cuda.get_device_name(0).removeprefix('NVIDIA ').replace(' ', '-') if torch.cuda.is_available() else 'CPU')
") || exit 1
if [ "$gpu" = CPU ]; then  # the pre-lease check: every step of the script, on the tiny preset
    FIRST=tiny MODELS=${MODELS:-} EXTRA=${EXTRA:-"--seq 64 --steps 5 --lr 2e-3 --prompt 16 --new 8 --reps 2 --warmups 1 --min-seconds 0"}
else
    FIRST=yi-6b MODELS=${MODELS:-qwen2.5-1.5b llama-2-7b mistral-7b qwen2.5-0.5b} EXTRA=${EXTRA:-}
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem,power.limit,power.default_limit,ecc.mode.current,persistence_mode \
        --format=csv > "$OUT/nvidia-smi.txt" 2>&1
fi
python3 -c "import torch, transformers, peft, bitsandbytes as b; print('versions:', torch.__version__, transformers.__version__, peft.__version__, b.__version__)" 2>&1 | tee -a "$log"

bench() {  # bench NAME SECONDS_NEEDED ARGS...: one llmdoctor bench run into $OUT/$gpu-NAME.json
    local name=$1 need=$2; shift 2
    local left=$((BUDGET_S - (SECONDS - started)))
    if [ "$left" -lt "$need" ]; then echo "== $name: skipped, ${left}s left (needs about ${need}s)" | tee -a "$log"; return 0; fi
    echo "== $name (${left}s left): llmdoctor bench $*" | tee -a "$log"
    local t0=$SECONDS
    # shellcheck disable=SC2086
    timeout "$left" python3 -m llmdoctor bench "$@" $EXTRA --json > "$OUT/$gpu-$name.json" 2> >(tee -a "$log" >&2)
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0))s" | tee -a "$log"
    python3 - "$OUT/$gpu-$name.json" <<'PY' 2>&1 | tee -a "$log"
import json, sys
from llmdoctor.benchmark import run
try:
    print(run.text(json.load(open(sys.argv[1])), width=120))
except ValueError as exc:
    print(f"no JSON: {exc}")
PY
    return $rc
}

bench "$FIRST" 60 --model "$FIRST" --plot "$OUT/$gpu-$FIRST.png"
code=$?
bench "$FIRST-fill" 90 --model "$FIRST" --workload train-qlora --workload train-lora16 --batch fill
for model in $MODELS; do
    bench "$model" 150 --model "$model"
done
echo "== done after $((SECONDS - started))s; the first run's exit code: $code" | tee -a "$log"
exit $code
