#!/usr/bin/env bash
# Installs fern's build and test dependencies from Debian's packages, if any
# is missing. Sourced by main.sh and test.sh; safe to run again.
set -euo pipefail
FERN_PACKAGES=(build-essential cmake pkg-config clang libopenblas-dev libdnnl-dev libcmocka-dev
               zlib1g-dev libpng-dev libjpeg-dev libsqlite3-dev libzip-dev libcjson-dev
               python3 python3-numpy python3-torch dataset-fashion-mnist)
missing=()
for p in "${FERN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fern: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
