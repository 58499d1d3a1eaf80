#!/usr/bin/env bash
# Installs the Debian packages ncore's build needs (idempotent: only what is
# missing). --with-peers adds the bench-only CPU peers (OpenBLAS, oneDNN).
set -euo pipefail

packages=(cmake g++ make pkg-config libhwy-dev libeigen3-dev libcli11-dev libgtest-dev
          libgmock-dev libbenchmark-dev nlohmann-json3-dev)
if [[ "${1:-}" == "--with-peers" ]]; then
  packages+=(libopenblas-dev libdnnl-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
echo "ncore setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
