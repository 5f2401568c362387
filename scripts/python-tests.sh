#!/usr/bin/env bash
# The Python half of `make test`: the osml package (built from python/ with maturin) and the
# interoperability of osml's datasets with megatron-core, numpy and tiktoken. Creates .venv on
# first use (about 75 s and 5 GB: torch comes with CUDA libraries from PyPI) and reuses it
# while tests/python/requirements.txt is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${OSML_VENV:-.venv}
req=tests/python/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.osml-requirements"; then
  echo "python-tests: creating $venv (first run downloads torch, numpy, tiktoken, megatron-core)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check -r "$req"
  "$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check --no-deps megatron-core==0.16.1
  cp "$req" "$venv/.osml-requirements"
fi
cargo build --locked --quiet --bin osml
# The package under test, built from python/ by the venv's maturin (which reuses
# python/target between runs).
export PATH="$(cd "$venv" && pwd)/bin:$PATH"
"$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./python
# tiktoken cannot download its vocabulary here; the tests seed its cache from the GPT-2 ranks
# that the tiktoken-rs crate ships.
assets=$(cargo metadata --locked --format-version 1 --filter-platform "$(rustc -vV | sed -n "s/^host: //p")" | "$venv/bin/python" -c '
import json, os, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.join(os.path.dirname(p["manifest_path"]), "assets") for p in pkgs if p["name"] == "tiktoken-rs"))')
export OSML_BIN="$PWD/target/debug/osml" OSML_TIKTOKEN_ASSETS="$assets"
exec "$venv/bin/python" -m pytest -c tests/python/pytest.ini tests/python "$@"
