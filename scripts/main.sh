#!/usr/bin/env bash
# The main job: install dependencies, build fern (Release), and run it.
# Usage: scripts/main.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo
./build/fern selfcheck
echo
echo "fern is built: the CLI is build/fern (try 'build/fern --help', 'build/fern ops'),"
echo "the libraries are build/libfern.a and build/libfern.so, the headers include/fern/."
