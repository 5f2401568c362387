#!/usr/bin/env bash
# `make test`: every test, Rust and Python, in the order README.md gives. On a fresh clone the
# Python environment (scripts/venv.sh: torch's CUDA wheels and the rest from PyPI, gigabytes)
# takes minutes that are mostly downloads, so it is made in the background while the Rust
# tests build and run, its output kept in a log and printed when the Python tests start.
#
# The set-up stays in this script's process group, so a signal to the group (Ctrl-C, a CI
# job's kill) reaches it as it reaches the tests; it never reads the terminal (stdin is
# /dev/null, pip is told not to ask). When this script ends early (a failed Rust test, INT,
# TERM, HUP), the set-up and every process it started are stopped while it still runs (never
# by a pid that may have been reused). A half-made .venv lacks its marker
# (.osml-requirements) and is made again on the next run. The Rust tests run in the
# foreground, as `make test-rust` runs them (some send SIGINT to the commands they start,
# which a background job would start with SIGINT ignored), so a TERM sent to this script
# alone takes effect when they end.
set -euo pipefail
cd "$(dirname "$0")/.."
make=${MAKE:-make}
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
log=$target/venv-setup.log

# `pid` and its descendants, children first (listed before their parent is stopped, which
# would hand them to init).
stop_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    stop_tree "$child"
  done
  kill -TERM "$1" 2>/dev/null || true
}

venv=
stop() {
  # A job bash still lists as running has not been reaped: its pid is still its own.
  if [ -n "$venv" ] && jobs -rp | grep -qx "$venv"; then
    echo "make test: stopped making the Python environment (its output so far: $log)" >&2
    stop_tree "$venv"
  fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

PIP_NO_INPUT=1 scripts/venv.sh </dev/null >"$log" 2>&1 &
venv=$!
"$make" --no-print-directory test-rust test-loom
status=0
wait "$venv" || status=$?
venv=
if [ "$status" != 0 ]; then
  cat "$log" >&2
  echo "make test: making the Python environment failed (scripts/venv.sh, exit $status; output above)" >&2
  exit 1
fi
trap - EXIT INT TERM HUP
cat "$log"
exec "$make" --no-print-directory test-python test-wheel
