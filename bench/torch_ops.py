"""PyTorch's side of bench/run_ops.sh: the same benchmarks as bench_ops.c,
printed in the same line format (see bench_ops.c):

    meta KEY VALUE
    result NAME MEDIAN_NS WORK UNIT REPS
    skip NAME REASON...

Run with Debian's interpreter, which has PyTorch 1.13:
    /usr/bin/python3 bench/torch_ops.py --threads N [--quick] [--filter WORD]
"""
import argparse
import ctypes
import ctypes.util
import sys
import time

import torch
import torch.nn.functional as F

ARGS = None


def openblas_threads():
    """Threads of the OpenBLAS that torch's BLAS calls land in, or -1."""
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            return lib.openblas_get_num_threads()
        except (OSError, AttributeError):
            pass
    return -1


def selected(name):
    return ARGS.filter is None or ARGS.filter in name


def run(name, fn, calls, work, unit, min_reps, max_reps, min_s):
    """fn() performs `calls` op calls. Warm up, then time repetitions until
    min_reps and ~min_s seconds (at most max_reps); print the median ns per
    op call."""
    if ARGS.quick:
        min_reps = max(min_reps // 3, 1)
        max_reps = max(max_reps // 3, 1)
        min_s /= 4
    warm_end = time.perf_counter_ns() + 50_000_000
    warm = 0
    while warm < 2 or time.perf_counter_ns() < warm_end:
        fn()
        warm += 1
    times = []
    start = time.perf_counter_ns()
    while len(times) < max_reps and (
        len(times) < min_reps or time.perf_counter_ns() - start < min_s * 1e9
    ):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / calls)
    times.sort()
    k = len(times)
    med = times[k // 2] if k % 2 else 0.5 * (times[k // 2 - 1] + times[k // 2])
    print(f"result {name} {med:.1f} {work:.0f} {unit} {k}", flush=True)


def randt(*shape):
    return torch.rand(*shape, dtype=torch.float32) * 2 - 1


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filter", default=None)
    ARGS = ap.parse_args()
    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    print("meta impl torch")
    print(f"meta version {torch.__version__}")
    print(f"meta threads {torch.get_num_threads()}")

    with torch.no_grad():
        for n in (256, 512, 1024, 2048):
            name = f"gemm_f32_{n}"
            if not selected(name):
                continue
            a, b = randt(n, n), randt(n, n)
            run(name, lambda: torch.matmul(a, b), 1, 2.0 * n**3, "flop",
                5 if n >= 2048 else 9, 50, 0.5)
        print(f"meta blas_threads {openblas_threads()}")

        # per-call overhead from Python: batches of 1000 calls, 200 batches
        calls, reps = 1000, 200
        x8, y8 = randt(8), randt(8)
        m8a, m8b = randt(8, 8), randt(8, 8)
        small = [
            ("call_add_8", lambda: torch.add(x8, y8)),
            ("call_relu_8", lambda: torch.relu(x8)),
            ("call_matmul_8x8", lambda: torch.matmul(m8a, m8b)),
        ]
        for name, op in small:
            if not selected(name):
                continue

            def batch(op=op):
                for _ in range(calls):
                    op()

            run(name, batch, calls, 1, "call", reps, reps, 0)

        n = 1 << 20
        a, b = randt(n), randt(n)
        mid = [
            ("add_f32_1M", lambda: torch.add(a, b), 12.0 * n),
            ("mul_f32_1M", lambda: torch.mul(a, b), 12.0 * n),
            ("exp_f32_1M", lambda: torch.exp(a), 8.0 * n),
            ("sum_f32_1M", lambda: torch.sum(a), 4.0 * n),
        ]
        for name, fn, work in mid:
            if selected(name):
                run(name, fn, 1, work, "byte", 15, 200, 0.3)
        if selected("softmax_64x1000"):
            s = randt(64, 1000)
            run("softmax_64x1000", lambda: torch.softmax(s, -1), 1, 8.0 * 64 * 1000, "byte",
                15, 500, 0.3)
        if selected("conv2d_lenet"):
            x, w, bias = randt(64, 1, 28, 28), randt(6, 1, 5, 5), randt(6)
            run("conv2d_lenet", lambda: F.conv2d(x, w, bias), 1, 2.0 * 64 * 6 * 24 * 24 * 25,
                "flop", 15, 500, 0.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
