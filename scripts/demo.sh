#!/usr/bin/env bash
# README command (a): the whole pipeline on this machine. Installs the
# local AWS emulator (moto, in .local/venv), builds the binaries, then
# starts emulator + gateway + transfer, sends one signed OSS event for an
# object in a local "OSS" bucket and prints where the object landed.
# Pass --keep-running to leave the stack up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/local/setup-emulator.sh
echo "==> building ossbridge (first build takes a few minutes)" >&2
cargo build --workspace --bins --locked --quiet
exec target/debug/ossbridge-demo "$@"
