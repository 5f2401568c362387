#!/usr/bin/env bash
# The peers' environment of `make bench-loaders` (not used by the tests): .venv-bench (or
# $OSML_BENCH_VENV) sees everything in the test environment (.venv, made by scripts/venv.sh:
# torch, numpy, megatron-core, HF datasets, osml) through a .pth file, and adds litdata,
# MosaicML Streaming and torchdata with their dependencies, which pull in cloud SDKs and pin
# numpy < 2.2 (so the bench venv has its own numpy, ahead of .venv's on sys.path). MosaicML
# Streaming 0.13 imports transformers (one class, BatchFeature) and pins transformers < 5, whose
# huggingface-hub < 1 breaks HF datasets 5.2 (hub >= 1.31): transformers 5 is installed over
# the pin, which keeps both importable. Re-created when this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${OSML_VENV:-.venv}
venv=${OSML_BENCH_VENV:-.venv-bench}
scripts/venv.sh >&2
peers="litdata==0.2.76 mosaicml-streaming==0.13.0 torchdata==0.11.0"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$0" "$venv/.osml-bench-script"; then
  echo "bench venv: creating $venv ($peers)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$site/osml-test-venv.pth"
  # shellcheck disable=SC2086 # the list of pinned peers is split on purpose
  "$venv/bin/pip" install --quiet --disable-pip-version-check $peers 2>&1 | grep -v "dependency resolver\|requires huggingface-hub" >&2 || true
  "$venv/bin/pip" install --quiet --disable-pip-version-check "transformers==5.24.0" 2>&1 | grep -v "dependency resolver\|requires transformers" >&2 || true
  "$venv/bin/python" -c "import datasets, litdata, streaming, torchdata.stateful_dataloader, osml" >&2
  cp "$0" "$venv/.osml-bench-script"
fi
echo "$venv/bin/python"
