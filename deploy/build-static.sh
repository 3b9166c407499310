#!/bin/bash
# Builds the binary to put on nodes: statically linked, non-PIE. It runs on any distribution,
# and each pod start skips the dynamic loader (mapping libc and libgcc_s, relocations), which is
# most of what a short-lived plugin process costs (see BENCHMARKS in the README).
# `--target` keeps these flags off build scripts and proc-macros, which cannot link statically.
# Prints the path of the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release --quiet -p calico-preflight --target "$TARGET"
echo "$PWD/target/$TARGET/release/calico-preflight"
