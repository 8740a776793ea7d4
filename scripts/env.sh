# Sourced by the other scripts: one target directory per machine, outside the clone, so a
# warm machine (and CI on it) rebuilds only Runink's own crates. Same profile and no
# RUSTFLAGS everywhere, or everything rebuilds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runink-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
unset RUSTFLAGS
mkdir -p "$CARGO_TARGET_DIR"

# Guard the disk: a debug build of the workspace needs a few GB; with under 15 GB free,
# start the cache over rather than fail half-way through a link.
free_kb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR==2 {print $4}')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((15 * 1024 * 1024)) ]; then
  echo "runink: less than 15 GB free; wiping $CARGO_TARGET_DIR" >&2
  rm -rf "${CARGO_TARGET_DIR:?}"/*
fi
