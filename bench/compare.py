"""bench/compare: fern (graph and pynative) against PyTorch 1.13 on the same
machine in the same run, same thread count. Prints a table of milliseconds
per training step and the ratio to PyTorch (below 1: fern is faster).
PyTorch's time is the faster of two runs (see below).
usage: compare.py BUILD_DIR [--quick]"""
import os
import subprocess
import sys

build = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build"
quick = ["--quick"] if "--quick" in sys.argv else []
fern = subprocess.run([os.path.join(build, "bench", "bench_train")] + quick, capture_output=True, text=True,
                      check=True).stdout
threads = next(int(l.split()[1]) for l in fern.splitlines() if l.startswith("threads"))
# PyTorch runs twice and keeps its faster time per workload: as installed,
# and with OpenBLAS (its gemm library here) at one thread. On this 2-vCPU
# machine OpenBLAS's own threads and torch's OpenMP threads spin against each
# other, and torch's LeNet step then lands at 3 ms or at 13 ms from run to run.
torch_runs = []
for env_extra in ({}, {"OPENBLAS_NUM_THREADS": "1"}):
    torch_runs.append(subprocess.run(
        ["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "torch_train.py"), str(threads)] + quick,
        capture_output=True, text=True, check=True, env=dict(os.environ, **env_extra)).stdout)
rows = {}
for line in "\n".join([fern] + torch_runs).splitlines():
    parts = line.split()
    if len(parts) == 4 and parts[0] in ("train", "epoch", "fwd"):
        row = rows.setdefault((parts[0], parts[1]), {})
        v = float(parts[3])
        row[parts[2]] = min(v, row.get(parts[2], v))
print("fern vs PyTorch 1.13, %d threads (ms; ratio = fern / torch, lower is better;" % threads)
print("torch: the faster of two runs, as installed and with OPENBLAS_NUM_THREADS=1)")
print("%-22s %10s %10s %10s %12s %12s" % ("workload", "graph", "pynative", "torch", "graph/torch", "pyn./torch"))
for (kind, name), v in rows.items():
    label = "%s %s" % (name, {"train": "step", "epoch": "epoch (60k)", "fwd": "forward"}[kind])
    t = v.get("torch")
    g, p = v.get("graph"), v.get("pynative")
    fmt = lambda x: "%10.3f" % x if x is not None else "%10s" % "-"
    ratio = lambda x: "%12.2f" % (x / t) if x is not None and t else "%12s" % "-"
    print("%-22s %s %s %s %s %s" % (label, fmt(g), fmt(p), fmt(t), ratio(g), ratio(p)))
