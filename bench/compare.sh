#!/bin/sh
# One command: fern's training steps and a full LeNet epoch against PyTorch.
#   bench/compare.sh [BUILD_DIR] [--quick]
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ $# -gt 0 ] && shift
exec /usr/bin/python3 bench/compare.py "$build" "$@"
