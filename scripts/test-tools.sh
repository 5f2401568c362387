#!/usr/bin/env bash
# Tools the Rust tests check osml's output with, installed from Debian's archive when missing
# and this runs as root with apt-get (CI does): promtool (package prometheus), which checks
# `osml doctor --format prometheus`. Elsewhere a missing tool makes its test skip, visibly.
set -euo pipefail
if command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test-tools: installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; } \
    || echo "test-tools: could not install prometheus; the promtool check will skip"
fi
