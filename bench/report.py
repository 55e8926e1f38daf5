"""Join the outputs of bench_ops (fern) and torch_ops.py (PyTorch) into one
table: median time per call for each, the ratio fern/torch (below 1 means
fern is faster) and the throughput of each side (GFLOP/s for compute-bound
rows, GB/s for memory-bound rows; none for per-call rows).

    python3 bench/report.py FERN_OUTPUT TORCH_OUTPUT [--markdown]
"""
import sys

DESCRIPTIONS = {
    "gemm_f32_256": "GEMM f32 256x256 @ 256x256",
    "gemm_f32_512": "GEMM f32 512",
    "gemm_f32_1024": "GEMM f32 1024",
    "gemm_f32_2048": "GEMM f32 2048",
    "call_add_8": "add f32[8] + f32[8], per call",
    "call_add_8_byname": "  same, fern_op_invoke(\"add\")",
    "call_relu_8": "relu f32[8], per call",
    "call_matmul_8x8": "matmul 8x8 @ 8x8, per call",
    "add_f32_1M": "add f32[1M] + f32[1M]",
    "mul_f32_1M": "mul f32[1M] * f32[1M]",
    "exp_f32_1M": "exp f32[1M]",
    "sum_f32_1M": "sum f32[1M] -> scalar",
    "softmax_64x1000": "softmax f32[64,1000], last axis",
    "conv2d_lenet": "conv2d (64,1,28,28) * (6,1,5,5) + bias",
}


def parse(path):
    meta, results, skips, order = {}, {}, {}, []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "meta" and len(parts) >= 3:
                meta[parts[1]] = " ".join(parts[2:])
            elif parts[0] == "result" and len(parts) >= 6:
                name = parts[1]
                results[name] = (float(parts[2]), float(parts[3]), parts[4], int(parts[5]))
                order.append(name)
            elif parts[0] == "skip" and len(parts) >= 2:
                skips[parts[1]] = " ".join(parts[2:])
                order.append(parts[1])
    return meta, results, skips, order


def fmt_time(ns):
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_rate(r):
    if r is None:
        return "-"
    ns, work, unit, _ = r
    if unit == "call":
        return "-"
    per_s = work / ns  # units per ns = G units per s
    return f"{per_s:.1f} {'GFLOP/s' if unit == 'flop' else 'GB/s'}"


def main(argv):
    md = "--markdown" in argv
    paths = [a for a in argv if not a.startswith("--")]
    if len(paths) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    fmeta, fres, fskip, forder = parse(paths[0])
    tmeta, tres, tskip, torder = parse(paths[1])
    names = []
    for n in forder + torder:
        if n not in names:
            names.append(n)

    head = ["benchmark", "fern", "torch", "fern/torch", "fern rate", "torch rate"]
    rows, notes = [], []
    for n in names:
        f, t = fres.get(n), tres.get(n)
        desc = DESCRIPTIONS.get(n, n)
        ratio = f"{f[0] / t[0]:.2f}" if f and t else "-"
        if n == "call_add_8_byname" and f and "call_add_8" in tres:
            ratio = f"{f[0] / tres['call_add_8'][0]:.2f}"
        rows.append([desc, fmt_time(f[0]) if f else "skipped",
                     fmt_time(t[0]) if t else ("n/a" if n.endswith("_byname") else "skipped"),
                     ratio, fmt_rate(f), fmt_rate(t)])
        if n in fskip:
            notes.append(f"{n}: fern skipped: {fskip[n]}")
        if n in tskip:
            notes.append(f"{n}: torch skipped: {tskip[n]}")

    print(f"fern {fmeta.get('version', '?')}: {fmeta.get('threads', '?')} threads, "
          f"BLAS threads {fmeta.get('blas_threads', '?')}; "
          f"torch {tmeta.get('version', '?')}: {tmeta.get('threads', '?')} threads, "
          f"BLAS threads {tmeta.get('blas_threads', '?')}")
    if fmeta.get("threads") != tmeta.get("threads"):
        print("WARNING: fern and torch ran with different thread counts")
    print()
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
             for i, h in enumerate(head)]
        print("  ".join(h.ljust(w[0]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head)))
        for r in rows:
            print("  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
    print()
    print("times are medians per call; fern/torch < 1 means fern is faster.")
    if fmeta.get("leaked_bytes", "0") != "0":
        notes.append(f"fern reported {fmeta['leaked_bytes']} bytes still allocated at exit")
    for n in notes:
        print("note: " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
