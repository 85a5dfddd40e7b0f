#!/usr/bin/env bash
# The issue's GPU evidence in one device call: `llmdoctor bench --model yi-6b` for both class
# profiles, JSON + PNG + log written to $OUT named after the GPU (commit them under
# benchmark/results/). The device's python3 has torch, transformers, peft, accelerate, click,
# nvidia-ml-py and matplotlib, not bitsandbytes: carry its wheel in .whl/ (ignored by git):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2
#
# then run(command="bash benchmark/gpu_evidence.sh", carry=[".whl"], timeout_s=600).
set -u -o pipefail
OUT=${OUT:-$PWD/benchmark/results}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/nvidia-smi.txt"
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).removeprefix('NVIDIA ').replace(' ', '-'))") || exit 1
# fewer repetitions than the defaults keep both profiles inside one 10-minute call
timeout 560 python3 -m llmdoctor bench --model yi-6b --profile all --steps 8 --reps 2 \
    --json --plot "$OUT/$gpu.png" > "$OUT/$gpu.json" 2> >(tee "$OUT/$gpu.log" >&2)
code=$?
python3 - "$OUT/$gpu.json" <<'PY'
import json, sys
from llmdoctor.benchmark import run
print(run.text(json.load(open(sys.argv[1])), width=120))
PY
exit $code
