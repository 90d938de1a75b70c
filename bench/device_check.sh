#!/usr/bin/env bash
# GPU readiness check (issue 14): find or set up a Python that imports parotidlib, run
# bench/bench_device.py on the device, and print its one line of figures LAST.
#
#   bash bench/device_check.sh            # on a CUDA machine: the full check, under 8 minutes
#   bash bench/device_check.sh --quick    # tiny smoke run on the CPU, under a minute
#
# Every argument goes to bench/bench_device.py (--device, --compile, --protocol-time, ...).
# Python: .venv/bin/python, else python / python3, whichever imports parotidlib and torch.
# If none does, a fresh venv (--system-site-packages, so that an installed torch 2.14.1 /
# torchvision 0.29.1 is reused) gets `pip install -e .`, quietly; offline, the fallbacks are
# `pip install --no-deps` and then PYTHONPATH=<repo>.
# Environment: DEVICE_CHECK_VENV (that venv; default $TMPDIR/parotid-device-venv),
# DEVICE_CHECK_TOTAL_S (the whole script's limit, default 470 s), DEVICE_CHECK_LOG (a file
# that also receives the whole output).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

total_s=${DEVICE_CHECK_TOTAL_S:-470}
venv=${DEVICE_CHECK_VENV:-${TMPDIR:-/tmp}/parotid-device-venv}
probe='import torch, torchvision, parotidlib.learn.train'
pip_quiet=(-q --disable-pip-version-check --no-input --retries 1 --timeout 20)

usable() { command -v "$1" >/dev/null 2>&1 && "$1" -c "$probe" >/dev/null 2>&1; }
left() { echo $((total_s - SECONDS)); }

PY=""
for cand in .venv/bin/python "$venv/bin/python" python python3; do
    if usable "$cand"; then PY=$cand; break; fi
done

if [ -z "$PY" ]; then
    base=""
    for cand in python python3 .venv/bin/python; do
        if command -v "$cand" >/dev/null 2>&1 \
                && "$cand" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
            base=$cand; break
        fi
    done
    if [ -z "$base" ]; then
        echo "device_check=failed reason=no python >= 3.11 found"
        exit 1
    fi
    echo "device_check: parotidlib is not importable; pip install -e . into $venv (from $base)"
    if [ -x "$venv/bin/python" ] || "$base" -m venv --system-site-packages "$venv"; then
        if ! timeout $(( $(left) / 2 )) "$venv/bin/python" -m pip install "${pip_quiet[@]}" \
                -e . >"$venv/pip.log" 2>&1; then
            echo "device_check: pip install -e . failed (offline?); the end of $venv/pip.log:"
            tail -n 5 "$venv/pip.log"
        fi
        usable "$venv/bin/python" && PY=$venv/bin/python
        if [ -z "$PY" ]; then  # offline: the dependencies may all be installed already
            timeout 120 "$venv/bin/python" -m pip install "${pip_quiet[@]}" --no-deps \
                --no-build-isolation -e . >/dev/null 2>&1
            usable "$venv/bin/python" && PY=$venv/bin/python
        fi
    fi
    if [ -z "$PY" ]; then
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
        usable "$base" && PY=$base
    fi
    if [ -z "$PY" ]; then
        "$base" -c "$probe"  # shows which import fails
        echo "device_check=failed reason=no python with parotidlib's dependencies (see above)"
        exit 1
    fi
fi

about='import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda",
torch.version.cuda, "available", torch.cuda.is_available())'
echo "device_check: $PY (python $("$PY" -c "$about")); setup $SECONDS s"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
fi

# The benchmark's own budget leaves room for a phase that runs over (a compilation cannot be
# cut short); the hard limit leaves room to print the figures of a run that was cut short.
hard=$(( $(left) - 10 ))
budget=$(( hard - 90 ))
budget_arg=()
case " $* " in
    *" --quick "*) ;;
    *) budget_arg=(--budget-s "$(( budget > 60 ? budget : 60 ))") ;;
esac
log=$(mktemp "${TMPDIR:-/tmp}/device_check.XXXXXX.log")
timeout --kill-after=10 "$hard" "$PY" -u bench/bench_device.py "${budget_arg[@]}" "$@" 2>&1 \
    | tee "$log"
rc=${PIPESTATUS[0]}
last=$(tail -n 1 "$log")
if [ "${last#device=}" = "$last" ]; then  # cut short or crashed: the figures measured so far
    partial=$(grep '^figures so far: ' "$log" | tail -n 1)
    partial=${partial#figures so far: }
    partial=${partial% total_s=pending}
    echo "${partial:-device=unknown} incomplete=rc$rc total_s=$SECONDS"
fi
if [ -n "${DEVICE_CHECK_LOG:-}" ]; then
    cp "$log" "$DEVICE_CHECK_LOG"
fi
rm -f "$log"
exit "$rc"
