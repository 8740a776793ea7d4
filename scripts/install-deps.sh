#!/usr/bin/env bash
# Installs the system packages Runink's build needs, idempotently (Debian/Ubuntu, as root
# or with sudo). The build needs a C toolchain and pkg-config (compression codecs of
# Parquet compile C), libclang-dev (bindgen, for librocksdb-sys) and librocksdb-dev (Barn's
# RocksDB is Debian's, linked through .cargo/config.toml instead of compiled from C++: see
# ../shared/BUILD.md). The Rust toolchain itself comes from rustup and is checked here.
set -euo pipefail

packages=(build-essential pkg-config libclang-dev librocksdb-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "runink: installing system packages: ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "runink: cargo is not on PATH; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
