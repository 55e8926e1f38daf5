#!/bin/sh
# Build the data-layer fuzz targets with libFuzzer + ASan + UBSan and run
# each for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s, all targets)
#
# Targets: every fuzz/fuzz_*.c, e.g. fuzz_idx (IDX + gzip), fuzz_cifar,
# fuzz_csv, fuzz_png, fuzz_jpeg (the image-folder source reads files through
# the PNG/JPEG decoders), fuzz_record, fuzz_checkpoint (fern checkpoints,
# safetensors, .npy), fuzz_ir (the IR text parser). They link against the
# whole library.
# Builds into $FUZZ_BUILD (default build-fuzz/ at the repository root)
# with $CC (default clang; needs libFuzzer: Debian's clang 14 has it).
# Seed corpora come from tests/data/make_refs.py when /usr/bin/python3 has
# NumPy (and Pillow for JPEG seeds); crashes are written under
# $FUZZ_BUILD/artifacts/TARGET/ and make the script exit 1.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${FUZZ_BUILD:-$root/build-fuzz}
cc=${CC:-clang}
secs=20
if [ $# -gt 0 ]; then
    case "$1" in
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) secs=$1; shift ;;
    esac
fi
if [ $# -gt 0 ]; then
    targets=$*
else
    targets=$(for f in "$here"/fuzz_*.c; do basename "$f" .c; done)
fi

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -I$root/include -I$root/src $(pkg-config --cflags openblas)"
libs="-ljpeg -lpng -lz -lm -lpthread $(pkg-config --libs openblas libzip libcjson)"
if pkg-config --exists sqlite3 2>/dev/null; then
    libs="$libs $(pkg-config --libs sqlite3)"
fi

mkdir -p "$out/obj"
echo "building library objects ($cc) ..." >&2
objs=""
for src in "$root"/src/*/*.c "$root"/src/backend/cpu/*.c; do
    o="$out/obj/$(basename "$(dirname "$src")")_$(basename "$src" .c).o"
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ -n "$(find "$root/src" -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
        if ! $cc $cflags $san -fsanitize=fuzzer-no-link -c "$src" -o "$o"; then
            echo "run.sh: warning: $src does not build; targets needing it will fail to link" >&2
            rm -f "$o"
            continue
        fi
    fi
    objs="$objs $o"
done

# seed corpora from the test reference generator
seeds="$out/refs"
if [ ! -f "$seeds/stamp" ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$root/tests/data/make_refs.py" "$seeds" >/dev/null 2>&1 || true
fi

seed_corpus() { # target dir
    mkdir -p "$2"
    [ -d "$seeds" ] || return 0
    case "$1" in
    fuzz_idx) find "$seeds" \( -name '*.idx' -o -name '*ubyte*' -o -name '*.gz' \) -size -64k -exec cp {} "$2/" \; ;;
    fuzz_cifar) find "$seeds/cifar10" "$seeds/cifar100" "$seeds/cifar_bad" -type f -size -64k -exec cp {} "$2/" \; 2>/dev/null || true ;;
    fuzz_csv) find "$seeds/csv" -name '*.csv' -exec cp {} "$2/" \; ;;
    fuzz_png) find "$seeds" -name '*.png' -size -64k -exec cp {} "$2/" \; ;;
    fuzz_jpeg) find "$seeds" \( -name '*.jpg' -o -name '*.JPG' \) -size -64k -exec cp {} "$2/" \; ;;
    fuzz_ir) cp "$here"/seeds_ir/*.ir "$2/" ;;
    esac
}

failed=""
for t in $targets; do
    src="$here/$t.c"
    [ -f "$src" ] || { echo "run.sh: no target $t ($src)" >&2; exit 2; }
    echo "building $t ..." >&2
    if ! $cc $cflags $san -fsanitize=fuzzer "$src" $objs $libs -o "$out/$t"; then
        echo "  $t: FAILED to build" >&2
        failed="$failed $t"
        continue
    fi
    corpus="$out/corpus/$t"
    [ -d "$corpus" ] || seed_corpus "$t" "$corpus"
    mkdir -p "$out/artifacts/$t"
    echo "running $t for ${secs}s ..." >&2
    if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" "$corpus" >"$out/$t.log" 2>&1; then
        echo "  $t: FAILED (see $out/$t.log and $out/artifacts/$t/)" >&2
        failed="$failed $t"
    fi
    runs=$(grep -m1 'stat::number_of_executed_units' "$out/$t.log" | awk '{print $2}')
    cov=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1)
    echo "  $t: ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) files" >&2
done
if [ -n "$failed" ]; then
    echo "fuzz: failures in:$failed" >&2
    exit 1
fi
echo "fuzz: all targets ran ${secs}s without findings" >&2
