#!/usr/bin/env bash
# The README's test command, and what CI runs: format, lints, then every test of the
# workspace (unit, end-to-end, property and snapshot tests) and the doc tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install-deps.sh
source scripts/env.sh
export INSTA_UPDATE=no   # a snapshot that differs fails; it is never rewritten here
# Snapshots are found from here, not from the path compiled into a test binary: a shared
# target directory may hold binaries another clone of the repository built.
export INSTA_WORKSPACE_ROOT="$PWD"

cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
