#!/usr/bin/env bash
# `make test`: every test, Rust and Python, in the order README.md gives. On a fresh clone the
# Python environment (scripts/venv.sh: torch's CUDA wheels and the rest from PyPI, gigabytes)
# takes minutes that are mostly downloads, so it is made in the background while the Rust
# tests build and run, and its output is printed when the Python tests need it. However this
# ends (a failed test, Ctrl-C, a kill), the background set-up is stopped with it: a half-made
# .venv lacks its marker (.osml-requirements) and is made again on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/venv-setup.log
# Job control on for one command: the set-up gets its own process group, stopped whole
# (pip included) by `stop`.
set -m
scripts/venv.sh >"$log" 2>&1 &
venv=$!
set +m
stop() { kill -TERM -- "-$venv" 2>/dev/null || true; }
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
make --no-print-directory test-rust test-loom
if ! wait "$venv"; then
  cat "$log" >&2
  echo "make test: making the Python environment failed (scripts/venv.sh, output above)" >&2
  exit 1
fi
trap - EXIT INT TERM
cat "$log"
make --no-print-directory test-python test-wheel
