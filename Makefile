# The two set-up commands of README.md: `cargo run --release -- doctor` runs the main job;
# `make test` runs every test (Rust today; Python joins when the package exists).

.PHONY: test lint bench-doctor

test:
	cargo test --workspace --locked

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

bench-doctor:
	cargo bench -p osml --bench doctor
