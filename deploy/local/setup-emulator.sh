#!/usr/bin/env bash
# Installs the local AWS emulator (moto server, with awscrt and crc32c so
# that S3 checksums are stored under their real names) into a virtualenv
# inside the repository. Idempotent: a second run only checks.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${OSSBRIDGE_VENV:-$root/.local/venv}"
requirements="$root/deploy/local/requirements.txt"
stamp="$venv/.ossbridge-requirements"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
echo "setting up the local AWS emulator in $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
