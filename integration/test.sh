#!/bin/bash
# Every test: installs what the tests need (once), builds the workspace (both CNI plugins the
# tests exec), then runs unit and integration tests. Run as root: the tests build namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash integration/setup.sh
cargo build --workspace --bins
cargo test --workspace
