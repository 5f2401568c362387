#!/usr/bin/env bash
# The Python environment of the tests and of `make wheel`: creates .venv (or $OSML_VENV) on
# first use and reuses it while tests/python/requirements.txt is unchanged. The first run
# downloads torch (with PyPI's CUDA libraries), numpy, tiktoken, megatron-core and maturin:
# see README.md, "Set-up", for the time and size on the development VM.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OSML_VENV:-.venv}
req=tests/python/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.osml-requirements"; then
  echo "venv: creating $venv (first run downloads torch, numpy, tiktoken, megatron-core, maturin)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check -r "$req"
  "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check --no-deps megatron-core==0.16.1
  cp "$req" "$venv/.osml-requirements"
fi
