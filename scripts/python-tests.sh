#!/usr/bin/env bash
# The Python half of `make test`: the osml package, installed from the wheel `make wheel`
# builds (so the extension is compiled once per run, in release, in the workspace's target
# directory), and the interoperability of osml's datasets with megatron-core, numpy and
# tiktoken. The environment comes from scripts/venv.sh (created on first use, then reused).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-wheel.sh >/dev/null
venv=${OSML_VENV:-.venv}
cargo build --locked --quiet --bin osml
export PATH="$(cd "$venv" && pwd)/bin:$PATH"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall dist/osml-*.whl
# tiktoken cannot download its vocabulary here; the tests seed its cache from the GPT-2 ranks
# that the tiktoken-rs crate ships.
assets=$(cargo metadata --locked --format-version 1 --filter-platform "$(rustc -vV | sed -n "s/^host: //p")" | "$venv/bin/python" -c '
import json, os, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.join(os.path.dirname(p["manifest_path"]), "assets") for p in pkgs if p["name"] == "tiktoken-rs"))')
export OSML_BIN="$PWD/target/debug/osml" OSML_TIKTOKEN_ASSETS="$assets"
exec "$venv/bin/python" -m pytest -c tests/python/pytest.ini tests/python "$@"
