#!/bin/sh
# Data pipeline benchmark: fern (bench/bench_data) vs PyTorch's DataLoader
# (bench/torch_data.py) on the same machine in the same run, same
# Fashion-MNIST pipeline (random crop with padding 2, random horizontal
# flip, to float CHW, normalize, shuffle, batch 64, full 60k training set).
# Prints images/second per worker count and the fern/torch ratio.
#
#   bench/run_data.sh [BUILD_DIR] [--workers 0,1,2] [--epochs N] [--dir DIR]
#
# BUILD_DIR defaults to build/ (it must hold bench/bench_data). Workers are
# fern map threads / torch DataLoader worker processes (0: the pipeline runs
# in fern's prefetch thread / in torch's main process). PyTorch runs in
# Debian's /usr/bin/python3 (override with FERN_TORCH_PYTHON).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=build
workers=0,1,2
epochs=3
dir=/usr/share/datasets/fashion-mnist
while [ $# -gt 0 ]; do
    case "$1" in
    --workers) workers=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --dir) dir=$2; shift ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run_data.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) build=$1 ;;
    esac
    shift
done

bench="$build/bench/bench_data"
if [ ! -x "$bench" ]; then
    echo "run_data.sh: $bench not found; build first:" >&2
    echo "  cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build" >&2
    exit 2
fi
if [ ! -r "$dir/train-images-idx3-ubyte.gz" ] && [ ! -r "$dir/train-images-idx3-ubyte" ]; then
    echo "run_data.sh: no Fashion-MNIST in $dir (Debian package dataset-fashion-mnist)" >&2
    exit 2
fi
py=${FERN_TORCH_PYTHON:-/usr/bin/python3}
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "run_data.sh: $py cannot import torch (Debian's python3-torch is needed)" >&2
    exit 2
fi
export PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(getconf _NPROCESSORS_ONLN) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "pipeline: Fashion-MNIST train (60000) -> random crop 28 (padding 2) -> random hflip -> f32 CHW /255 -> normalize -> shuffle -> batch 64; median of $epochs epochs after a warm-up epoch"
echo "running fern ($bench) ..." >&2
"$bench" --dir "$dir" --workers "$workers" --epochs "$epochs" >"$tmp/fern.txt"
echo "running torch ($py bench/torch_data.py) ..." >&2
"$py" "$here/torch_data.py" --dir "$dir" --workers "$workers" --epochs "$epochs" >"$tmp/torch.txt"

awk '
    FNR == 1 { file++ }
    $1 == "result" { split($2, a, "_w"); w = a[2]; if (file == 1) f[w] = $3; else t[w] = $3; ws[w] = 1 }
    END {
        printf "%-10s %16s %16s %12s\n", "workers", "fern img/s", "torch img/s", "fern/torch"
        n = split("'"$workers"'", order, ",")
        for (i = 1; i <= n; i++) {
            w = order[i]
            if (!(w in ws)) continue
            r = (w in t && t[w] > 0) ? sprintf("%.1fx", f[w] / t[w]) : "-"
            printf "%-10s %16.0f %16.0f %12s\n", w, f[w], t[w], r
        }
    }' "$tmp/fern.txt" "$tmp/torch.txt"
