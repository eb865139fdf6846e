#!/usr/bin/env bash
# README command (b), and all that CI runs (.ci/run calls this): formatting,
# lints, and the whole test suite against real local services.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo python3; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required" >&2; exit 1; }
done
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 \
    || rustup component add "$component" \
    || { echo "test.sh: the $component component is required" >&2; exit 1; }
done

tests/tools/setup.sh   # the emulator and the independent signers the tests use
.local/venv/bin/cfn-lint deploy/aws/ossbridge.yaml
.local/venv/bin/hadolint deploy/Dockerfile   # installed by setup.sh (tests/tools/requirements.txt)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests start the service binaries as child processes, so
# build them first; building every target at once also compiles the
# dependencies once, with the features the tests need.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
