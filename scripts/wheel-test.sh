#!/usr/bin/env bash
# The wheel as a user gets it: installed into a fresh virtual environment, with every
# directory that holds cargo or rustc removed from PATH, then `osml doctor --json`,
# `osml data pack` + `inspect` on a small corpus, and the Python package, all from that
# environment. The `[torch]` extra is checked by resolving it (pip --dry-run: torch's CUDA
# wheels are gigabytes, and the test environment already runs osml.torch against torch).
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(cd dist && echo "$PWD"/osml-*.whl)
work=$(mktemp -d "${TMPDIR:-/tmp}/osml-wheel-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
python=$(command -v python3)
clean_path=
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  if [ -n "$d" ] && [ ! -x "$d/cargo" ] && [ ! -x "$d/rustc" ]; then
    clean_path=${clean_path:+$clean_path:}$d
  fi
done
"$python" -m venv "$work/venv"
export PATH="$work/venv/bin:$clean_path"
unset CARGO_HOME RUSTUP_HOME CARGO_TARGET_DIR
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
  echo "wheel-test: cargo or rustc is still on PATH" >&2
  exit 1
fi
pip install --quiet --disable-pip-version-check "$wheel"
cd "$work"
osml --version
osml doctor --json >doctor.json || [ $? -eq 1 ] # 1: a check failed on this host
python -c 'import json, sys; r = json.load(open("doctor.json")); assert r["schema_version"] == 1 and r["findings"], r'
for i in $(seq 1 200); do echo "{\"text\": \"document $i, packed by the osml of a wheel\"}"; done >corpus.jsonl
osml data pack corpus.jsonl -o corpus
osml data inspect --json corpus >inspect.json
python - <<'PY'
import json, os, shutil, sys
import osml
assert shutil.which("osml") == os.path.join(sys.prefix, "bin", "osml"), shutil.which("osml")
assert osml.__file__.startswith(sys.prefix), osml.__file__
r = json.load(open("inspect.json"))
assert r["documents"] == 200, r
loader = osml.TokenLoader("corpus", batch_size=2, seq_len=8, mode="epoch", seed=1)
x, y = next(loader)
assert x.shape == (2, 8) and (x[:, 1:] == y[:, :-1]).all()
report = osml.doctor()
assert report["schema_version"] == 1
print(f"wheel-test: import osml, osml doctor, data pack + inspect and TokenLoader work from {sys.prefix}")
PY
pip install --quiet --disable-pip-version-check --dry-run --report extra.json "$wheel[torch]"
python -c 'import json; names = {i["metadata"]["name"] for i in json.load(open("extra.json"))["install"]}; assert "torch" in names, names; print("wheel-test: the [torch] extra brings torch")'
