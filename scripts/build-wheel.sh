#!/usr/bin/env bash
# `make wheel`: dist/osml-VERSION-cp39-abi3-PLATFORM.whl, holding the Python package (the
# `osml._osml` extension, stripped) and the `osml` command itself (the release binary,
# stripped, installed into the environment's bin/ from the wheel's .data/scripts).
#
# The command ships as the binary rather than as a console entry point into the extension: a
# Python entry point would start an interpreter (and import numpy) on every `osml doctor`, and
# the CLI would then share the interpreter's signal handling — Python's SIGINT handler, its
# SIGPIPE setting — where the binary has its own (`osml run` execs the training command; a
# closed pipe is exit 0). Both are built from the same commit in one target directory, so the
# crates they share compile once.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
venv=$(cd "${OSML_VENV:-.venv}" && pwd)
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked --quiet --bin osml
# maturin puts `<module>.data/` (here the module is osml._osml), when it exists, into the
# wheel's `.data/`; `scripts/` there is installed into the environment's bin/. It is made
# only for this build, so `pip install ./python` from source builds the package alone.
stage=python/osml._osml.data/scripts
rm -rf python/osml._osml.data
trap 'rm -rf python/osml._osml.data' EXIT
mkdir -p "$stage"
strip -o "$stage/osml" "$target/release/osml"
rm -rf dist
# maturin strips the extension (--strip); the lockfile is python/'s own.
(cd python && CARGO_TARGET_DIR="$target" "$venv/bin/maturin" build --quiet --release --strip --locked -o ../dist)
ls dist/osml-*.whl
