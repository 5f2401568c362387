#!/usr/bin/env bash
# The skips of `make test-rust`. Tests that cannot run here call `skip()`
# (crates/cli/tests/support/skip.rs), which appends `SKIP <binary>::<test>: <why>` to
# $CARGO_TARGET_DIR/tmp/osml-skipped.txt (target/ when unset). `--reset` removes that log before
# a run; without arguments this prints how many tests skipped and why. Never fails the run: no
# log means no skip.
set -euo pipefail
cd "$(dirname "$0")/.."
log="${CARGO_TARGET_DIR:-target}/tmp/osml-skipped.txt"
if [ "${1:-}" = "--reset" ]; then
  rm -f "$log"
elif [ -s "$log" ]; then
  echo "$(wc -l <"$log") Rust test(s) skipped:"
  sort "$log"
else
  echo "no Rust test skipped"
fi
