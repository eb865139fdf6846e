#!/usr/bin/env bash
# Installs what the tests sign requests with, independently of ossbridge's
# own code: the Python `standardwebhooks` and `cryptography` packages (into
# the project virtualenv, next to the emulator) and the npm
# `@octokit/webhooks-methods` package; and the TLS scanner `sslscan`
# (Debian). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/deploy/local/setup-emulator.sh"
venv="${OSSBRIDGE_VENV:-$root/.local/venv}"
requirements="$root/tests/tools/requirements.txt"
stamp="$venv/.ossbridge-test-tools"
if ! { [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; }; then
  echo "installing test signers into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi
node_dir="$root/tests/tools/node"
if [ ! -d "$node_dir/node_modules/@octokit/webhooks-methods" ]; then
  command -v npm >/dev/null || { echo "tests/tools/setup.sh: npm is required" >&2; exit 1; }
  echo "installing npm test signers" >&2
  (cd "$node_dir" && npm ci --no-audit --no-fund --silent)
fi
# sslscan, for gateway/tests/tls_scan.rs (Debian package). Only a warning
# when it cannot be installed (not root): that test then fails on its own.
if ! command -v sslscan >/dev/null; then
  echo "installing sslscan" >&2
  apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo -n apt-get "$@"; fi; }
  apt_get install -y --no-install-recommends sslscan >/dev/null \
    || { apt_get update >/dev/null && apt_get install -y --no-install-recommends sslscan >/dev/null; } \
    || echo "tests/tools/setup.sh: could not install sslscan; tls_scan tests will fail" >&2
fi
