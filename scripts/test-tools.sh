#!/usr/bin/env bash
# Tools the Rust tests check osml's output with, installed from Debian's archive when missing
# and this runs as root with apt-get (CI does): promtool (package prometheus), which checks
# `osml doctor --format prometheus`, and GNU time (package time), which measures the peak
# memory of `osml doctor` reading 100 MB of kernel log. Elsewhere a missing tool makes its
# test skip, visibly.
set -euo pipefail
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} = 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test-tools: installing ${missing[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
    || echo "test-tools: could not install ${missing[*]}; the tests that need them will skip"
fi
