#!/bin/bash
# Every test: installs what the tests need (once), checks formatting and lints, builds the
# workspace (both CNI plugins the tests exec), then runs unit and integration tests. Run as
# root: the tests build network namespaces and start containerd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash integration/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace
