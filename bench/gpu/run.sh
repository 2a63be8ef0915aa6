#!/usr/bin/env bash
# Run on the device machine, one or more steps per call (a call ends within FO1_CALL_S, 580 s):
#   checks      parity and generation tests on CUDA: golden ids through the dynamic, static,
#               compiled and graphed (CUDA-graph) decoders, one graph for every question; region
#               pooling and the caches
#   graphed     the short version for a short device budget: the `graphed` decoder's tests on
#               CUDA, then bench.generation (dynamic / graphed), bench.space_request (graphed)
#               and bench.regions (region pooling, ours against upstream's)
#   generation  bench.generation, 3B shape in bf16, dynamic / static / compiled / graphed
#   space       bench.space_request, 3B shape in bf16, dynamic / compiled / graphed
#   profile     bench.profile_question, 3B shape in bf16, dynamic / graphed, PyTorch's profiler
#   cudnn       bench.generation again with cuDNN attention allowed (PyTorch's own choice on
#               H100/H200), to compare with `generation`
# Everything it writes lands in $OUT (the device tool brings that folder back).
# Needs .device/ carried, filled by bench/gpu/prepare.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:?set by the device tool}

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .device/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
# The code finds the reference fixture and the 3B config beside the checkout, as it does here.
[ -e ../shared ] || ln -s "$PWD/.device/shared" ../shared

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} | tee "$out/machine.txt"

# Steps share one call: each is stopped in time for the call to end on its own and send $OUT back.
deadline=$((SECONDS + ${FO1_CALL_S:-580}))
within() { timeout -k 10 $((deadline > SECONDS + 1 ? deadline - SECONDS : 1)) "$@"; }
# bench NAME MODULE ARGS...: python -m bench.MODULE in bf16, rows in $out/NAME.json, log NAME.log
bench() {
  local name=$1 module=$2 && shift 2
  within python3 -m "bench.$module" --dtype bfloat16 "$@" --json "$out/$name.json" 2>&1 |
    tee "$out/$name.log" || failed=1
}

# cuda_tests PYTEST_ARGS...: pytest with the models on CUDA, output appended to checks.log
cuda_tests() {
  FO1_TEST_DEVICE=cuda within python3 -m pytest -q -rs -p no:cacheprovider "$@" 2>&1 |
    tee -a "$out/checks.log" || failed=1
}

failed=0
for step in "$@"; do
  case $step in
    checks)
      # One pytest per file: on torch 2.11 a compile after `torch._dynamo.reset()` (which the
      # graph-count test does) can crash a later compile in the same process; 2.14 is fine.
      for file in tests/test_parity.py tests/test_session.py tests/test_recorded_step.py \
        tests/test_graphed_forward.py tests/test_region_pooling.py tests/test_cache.py; do
        cuda_tests "$file"
      done
      ;;
    graphed)
      cuda_tests -k "graphed or record" tests/test_parity.py tests/test_session.py \
        tests/test_recorded_step.py tests/test_graphed_forward.py
      bench generation generation --profiles 3b --runs 2 --decode dynamic graphed
      bench space space_request --profile 3b --decode graphed
      bench regions regions --profile 3b
      ;;
    generation)
      bench generation generation --profiles 3b --runs 2 --decode dynamic static compiled graphed
      ;;
    space) bench space space_request --profile 3b --decode dynamic compiled graphed ;;
    profile) bench profile profile_question --profile 3b --decode dynamic graphed --torch-profiler ;;
    cudnn)
      bench cudnn generation --profiles 3b --runs 2 --decode dynamic compiled --cudnn-attention
      ;;
    *) echo "unknown step '$step': checks, graphed, generation, space, profile or cudnn" >&2 && exit 2 ;;
  esac
done
exit $failed
