#!/usr/bin/env bash
# The first command of the README: set up, build `runi`, generate the bundled example's
# data (100 000 trades with a known number of invalid rows of each kind) and run it in
# embedded mode. Run from anywhere; it works in examples/trades/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/install-deps.sh
source scripts/env.sh

cargo build --locked --bin runi --bin gen-trades
runi="$CARGO_TARGET_DIR/debug/runi"

cd examples/trades
[ -f data/trades.csv ] || "$CARGO_TARGET_DIR/debug/gen-trades" --rows 100000 --out data
"$runi" herd apply -f herd.toml
"$runi" compile --scenario trades.feature --out dags/trades.dag
"$runi" run --dag dags/trades.dag "$@"
echo
echo "outputs: examples/trades/out/ (valid trades as Parquet, rejected as NDJSON, large trades as CSV)"
echo "runi is at $runi"
