#!/usr/bin/env bash
# One GPU session's attention check (issue 6): the kernel tests compiled on the GPU (the `gpu` ones
# included), then the attention benchmark. Writes, under benchmarks/results/:
#   attention_<tag>.json        the benchmark (P6, P7, roofline share at s=128)
#   attention_<tag>_tests.json  the pytest outcome (exit code, summary line, failures)
#   peers_pretrain_<tag>.json   claimsfm vs Hugging Face BERT pretraining (issue 14; see below)
# Usage: bash benchmarks/gpu_check.sh [tag]      (tag defaults to the GPU's last name word, e.g. h200)
# Budget: at most 240 s of benchmark + 330 s of tests (each kernel compiles once per dtype/head_dim/
# tile), so one device call with timeout_s=600 holds both.
# Needs torch with CUDA and triton; claimsfm itself may be uninstalled: then kernels/ is imported
# from this tree through a temporary `claimsfm` shim package (kernels/ imports nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU visible')"
tag="${1:-$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")}"
results=benchmarks/results
mkdir -p "$results"
unset TRITON_INTERPRET
export TRITON_DEFAULT_FP_FUSION=1

if ! python3 -P -c "import claimsfm.kernels" 2>/dev/null; then
    shim="$(mktemp -d)"
    mkdir -p "$shim/claimsfm"
    : > "$shim/claimsfm/__init__.py"
    ln -s "$PWD/kernels" "$shim/claimsfm/kernels"
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
    echo "claimsfm not installed: using the shim at $shim" >&2
fi

# Benchmark first: its JSON is the deliverable if the device time runs short. Neither step's
# failure stops the other; the script exits non-zero if either failed.
set +e
timeout 240 python3 benchmarks/attention.py --out "$results/attention_${tag}.json" >/dev/null
bench_rc=$?
set -e
if [ "$bench_rc" -eq 0 ]; then
    python3 - "$results/attention_${tag}.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"ratios": r["ratios"], "roofline_share": r["roofline"]["share_of_roofline"],
                  "padding_fraction": r["lengths"]["padding_fraction"]}, indent=2))
PY
else
    echo "benchmark failed (exit $bench_rc)" >&2
fi

# Issue 14: pretraining side by side with Hugging Face BERT (claimsfm on the Triton kernel, BERT on SDPA),
# 2.2M and 11M, on a fresh 3,000-patient synth cohort -> peers_pretrain_<tag>.json. Needs claimsfm installed
# with its C++ extension and transformers (pip install ".[bench]"); skipped with a message otherwise.
# At most 180 s: with it the whole script may pass one 600 s device call, so CLAIMSFM_GPU_CHECK_PEERS=0 leaves
# it out (then run the python3 line below alone in a second call).
peers_rc=0
if [ "${CLAIMSFM_GPU_CHECK_PEERS:-1}" != 0 ]; then
    if python3 -c "import claimsfm.native, claimsfm.data, transformers" 2>/dev/null; then
        set +e
        timeout 180 python3 benchmarks/peers_pretrain.py --work "$(mktemp -d)" --sizes 2.2M,11M --steps 8 \
            --batch-tokens 32768 --out "$results/peers_pretrain_${tag}.json" >/dev/null
        peers_rc=$?
        set -e
        [ "$peers_rc" -eq 0 ] || echo "peers benchmark failed (exit $peers_rc)" >&2
    else
        echo "peers benchmark skipped: claimsfm (with its C++ extension) or transformers is not importable" >&2
    fi
fi

log="$(mktemp)"
set +e
timeout 330 python3 -P -m pytest -q -p no:cacheprovider tests/kernels -rfE 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
python3 - "$log" "$rc" "$results/attention_${tag}_tests.json" <<'PY'
import json, os, re, sys
text = open(sys.argv[1]).read()
lines = [l for l in text.splitlines() if re.search(r"\d+ (passed|failed|error)", l)]
out = {"exit_code": int(sys.argv[2]), "summary": lines[-1].strip("= ") if lines else None,
       "failures": [l for l in text.splitlines() if l.startswith(("FAILED", "ERROR"))][:50]}
tmp = sys.argv[3] + ".tmp"
open(tmp, "w").write(json.dumps(out, indent=2) + "\n")
os.replace(tmp, sys.argv[3])
PY

echo "benchmark exit code: $bench_rc; peers exit code: $peers_rc; tests exit code: $rc; results in $results/"
[ "$bench_rc" -eq 0 ] && [ "$peers_rc" -eq 0 ] && [ "$rc" -eq 0 ]
