#!/usr/bin/env bash
# Installs what the tests sign requests with, independently of ossbridge's
# own code: the Python `standardwebhooks` and `cryptography` packages (into
# the project virtualenv, next to the emulator) and the npm
# `@octokit/webhooks-methods` package; the TLS scanner `sslscan` and the
# `openssl` CLI (Debian; it makes the 512-bit MNS key that `cryptography`
# refuses to generate). Idempotent.
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
# sslscan (gateway/tests/tls_scan.rs) and openssl (tests/tools/cert_server.py),
# Debian packages. Only a warning when they cannot be installed (not root):
# the tests needing them then fail on their own.
apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo -n apt-get "$@"; fi; }
for tool in sslscan openssl; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool" >&2
    apt_get install -y --no-install-recommends "$tool" >/dev/null \
      || { apt_get update >/dev/null && apt_get install -y --no-install-recommends "$tool" >/dev/null; } \
      || echo "tests/tools/setup.sh: could not install $tool; tests using it will fail" >&2
  fi
done
