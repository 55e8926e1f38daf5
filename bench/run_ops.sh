#!/bin/sh
# Op benchmarks: fern vs PyTorch 1.13 in the same run on this machine, with
# the same thread count, joined into one table. Builds nothing.
#
#   bench/run_ops.sh [BUILD_DIR] [--quick] [--markdown] [--filter WORD]
#
# BUILD_DIR defaults to build/ (it must hold bench/bench_ops). The thread
# count is FERN_NUM_THREADS if set, else the number of online CPUs; it is
# given to fern (FERN_NUM_THREADS), torch (torch.set_num_threads) and the
# OpenBLAS both use (OPENBLAS_NUM_THREADS). PyTorch runs in Debian's
# /usr/bin/python3 (override with FERN_TORCH_PYTHON).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=build
pass=""
markdown=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) pass="$pass --quick" ;;
    --markdown) markdown="--markdown" ;;
    --filter)
        [ $# -ge 2 ] || { echo "run_ops.sh: --filter needs a WORD" >&2; exit 2; }
        pass="$pass --filter $2"
        shift ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run_ops.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) build=$1 ;;
    esac
    shift
done

bench="$build/bench/bench_ops"
if [ ! -x "$bench" ]; then
    echo "run_ops.sh: $bench not found; build first:" >&2
    echo "  cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build" >&2
    exit 2
fi
py=${FERN_TORCH_PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "run_ops.sh: $py cannot import torch (Debian's python3-torch is needed)" >&2
    exit 2
fi

threads=${FERN_NUM_THREADS:-$(getconf _NPROCESSORS_ONLN)}
export FERN_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
export PYTHONDONTWRITEBYTECODE=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

ncpu=$(getconf _NPROCESSORS_ONLN)
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $ncpu CPUs; threads: $threads; load before: $load; $(date -u '+%Y-%m-%d %H:%M UTC')"
if awk -v l="$load" -v n="$ncpu" 'BEGIN { exit !(l > n / 2) }'; then
    echo "WARNING: the machine is busy (load $load on $ncpu CPUs): timings will be noisy" >&2
fi
echo "running fern ($bench) ..." >&2
# shellcheck disable=SC2086
"$bench" $pass >"$tmp/fern.txt"
echo "running torch ($py bench/torch_ops.py) ..." >&2
# shellcheck disable=SC2086
"$py" "$here/torch_ops.py" --threads "$threads" $pass >"$tmp/torch.txt"
"$py" "$here/report.py" "$tmp/fern.txt" "$tmp/torch.txt" $markdown
