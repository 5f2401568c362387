# The two set-up commands of README.md: `cargo run --release -- doctor` runs the main job;
# `make test` runs every test, Rust and Python.

.PHONY: test test-rust test-loom test-python test-wheel wheel lint bench-doctor bench-open bench-pack bench-os bench-trace bench-loaders

# scripts/test-all.sh: test-rust, test-loom, test-python, test-wheel, with the Python
# environment made in the background while the Rust tests run.
test:
	MAKE="$(MAKE)" scripts/test-all.sh

# Tools the tests check output with (scripts/test-tools.sh: promtool and GNU time, installed
# as root when missing); then the tests that skipped here, and why (scripts/report-skips.sh),
# whether or not all passed.
test-rust:
	scripts/test-tools.sh
	scripts/report-skips.sh --reset
	cargo test --workspace --locked; status=$$?; scripts/report-skips.sh; exit $$status

# The loader's buffer pool model-checked under loom (its own target dir: --cfg loom rebuilds
# osml-data's dependencies, about a minute the first time).
test-loom:
	RUSTFLAGS="--cfg loom" cargo test -p osml-data --lib --release --locked --target-dir target/loom loom

# Creates .venv on first use (torch, numpy, tiktoken, megatron-core, maturin from PyPI) and
# builds the wheel, which the Python tests install.
test-python:
	scripts/python-tests.sh

# The wheel in a fresh environment without cargo or rustc on PATH: the osml command, the
# package, the [torch] extra.
test-wheel: wheel
	scripts/wheel-test.sh

# dist/osml-*.whl: the package with its extension and the osml command, stripped.
wheel:
	scripts/build-wheel.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
	cd python && cargo fmt --check && cargo clippy --all-targets --locked -- -D warnings

bench-doctor:
	cargo bench -p osml --bench doctor

bench-open:
	cargo bench -p osml-data --bench open

bench-pack:
	cargo build --release --locked --bin osml
	OSML_TIKTOKEN_ASSETS=$$(cargo metadata --locked --format-version 1 | .venv/bin/python -c 'import json,os,sys; print(next(os.path.join(os.path.dirname(p["manifest_path"]),"assets") for p in json.load(sys.stdin)["packages"] if p["name"]=="tiktoken-rs"))') \
	  .venv/bin/python scripts/bench-pack.py target/release/osml

bench-trace:
	cargo build --release -p osml
	python3 benchmarks/trace_overhead.py target/release/osml

bench-os:
	cargo build --release -p osml
	python3 benchmarks/os_tools.py target/release/osml

# The peers (litdata, MosaicML Streaming, torchdata) live in the bench venv, which
# scripts/bench-venv.sh makes on first use and names on stdout.
bench-loaders:
	py="$(shell scripts/bench-venv.sh)"; test -n "$$py" || { echo "scripts/bench-venv.sh failed" >&2; exit 1; }; \
	  $$py benchmarks/loaders.py && $$py benchmarks/loaders.py --mixture && $$py benchmarks/loaders.py --resume-check
	.venv/bin/python benchmarks/first_batch.py
	.venv/bin/python benchmarks/blend_open.py
	.venv/bin/python benchmarks/documents.py
