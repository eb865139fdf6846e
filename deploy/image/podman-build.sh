#!/usr/bin/env bash
# Builds deploy/Dockerfile with podman where the base images cannot be
# pulled (no registry), then runs the image. The two FROM images are
# replaced by local stand-ins under their own names, so the Dockerfile is
# built unchanged:
#   rust:1.95-bookworm    Debian 12 (debootstrap minbase + gcc, libc6-dev,
#                         make, git, pkg-config, ca-certificates) with this
#                         machine's Rust 1.95 toolchain and CA bundle; RUN
#                         steps reach crates.io (cargo install cargo-chef,
#                         the dependency downloads)
#   gcr.io/distroless/cc-debian12:nonroot
#                         the root check-runtime.sh --root-only assembles
#                         from the Debian packages distroless is made of,
#                         USER 65532, WORKDIR /home/nonroot
# Then, against the image: its user, command and ports, its contents (the
# two binaries, no shell), `ossbridge-transfer --help`, the default command
# without a mounted configuration, and the gateway with one mounted
# read-only on a read-only root (moto as SQS): /healthz, /readyz, exit 0
# on `podman stop`.
#
#   deploy/image/podman-build.sh [--store DIR] [--no-build]
#
# Root, podman, runc, debootstrap and a 1.95.0 rustup toolchain are
# needed; the build is a full release build (slow on 2 cores). --store
# (default /var/tmp/ossbridge-podman) holds podman's storage and temporary
# files; on a small disk, point it at a tmpfs (a few GB). Prints PASS/FAIL
# per check and exits non-zero if any failed.
#
# Flags this machine needed, and why (podman 4.3 on a Firecracker VM with
# hybrid cgroups v1+v2 and no CAP_SYS_RESOURCE): --runtime runc (crun
# refuses hybrid cgroups), --ulimit nofile/nproc at or below the limits
# podman's conmon runs with (the runtime cannot raise them: podman's
# defaults of 1048576 fail), --network host (builds reach crates.io
# without netavark's NAT).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
store=/var/tmp/ossbridge-podman
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --store) store="$2"; shift ;;
    --no-build) build=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in podman runc debootstrap rustup curl; do
  command -v "$tool" >/dev/null || { echo "podman-build.sh: $tool is missing" >&2; exit 2; }
done

IMAGE=localhost/ossbridge:image-check
mkdir -p "$store/tmp"
export TMPDIR="$store/tmp" # podman stages imports and layers here, not in /var/tmp
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[ "$nproc" = unlimited ] && nproc=32768
[ "$nofile" = unlimited ] && nofile=65536
[ "$nofile" -gt 65536 ] && nofile=65536
# podman itself runs conmon and runc with RLIMIT_NPROC 32768 here.
[ "$nproc" -gt 32768 ] && nproc=32768
pm() { podman --root "$store/storage" --runroot "$store/run" --runtime runc "$@"; }
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

passed=0
failed=0
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }
step() { echo "==> $*"; }

gw=
moto=
cleanup() {
  [ -n "$gw" ] && pm rm -f "$gw" >/dev/null 2>&1
  [ -n "$moto" ] && kill "$moto" 2>/dev/null
  rm -rf "$store/conf"
  wait 2>/dev/null || true
}
trap cleanup EXIT

if [ "$build" = 1 ]; then
  if ! pm image exists docker.io/library/rust:1.95-bookworm; then
    step "stand-in for rust:1.95-bookworm"
    rootfs="$store/builder-root"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=gcc,libc6-dev,make,git,pkg-config,ca-certificates \
      bookworm "$rootfs" http://deb.debian.org/debian >"$store/debootstrap.log" 2>&1 || {
      tail -20 "$store/debootstrap.log" >&2
      exit 1
    }
    toolchain="$(rustup run 1.95.0 rustc --print sysroot)"
    mkdir -p "$rootfs/usr/local/rust" "$rootfs/usr/local/cargo"
    cp -a "$toolchain"/{bin,lib,libexec,etc} "$rootfs/usr/local/rust/"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # The host's CA bundle, so that the RUN steps trust whatever the host
    # trusts on its way to crates.io (e.g. a TLS-inspecting proxy).
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$rootfs" -c . | pm import \
      --change 'ENV CARGO_HOME=/usr/local/cargo' \
      --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV RUST_VERSION=1.95.0' --change 'CMD ["bash"]' \
      - docker.io/library/rust:1.95-bookworm >/dev/null
    rm -rf "$rootfs"
  fi
  if ! pm image exists gcr.io/distroless/cc-debian12:nonroot; then
    step "stand-in for gcr.io/distroless/cc-debian12:nonroot"
    rootfs="$store/distroless-root"
    rm -rf "$rootfs"
    "$repo/deploy/image/check-runtime.sh" --root-only "$rootfs"
    tar -C "$rootfs" -c . | pm import --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      - gcr.io/distroless/cc-debian12:nonroot >/dev/null
    rm -rf "$rootfs"
  fi
  step "podman build -f deploy/Dockerfile (pull=never: only the stand-ins)"
  start=$SECONDS
  if nice -n 10 podman --root "$store/storage" --runroot "$store/run" build --runtime runc \
    --pull=never --network host "${LIMITS[@]}" -f "$repo/deploy/Dockerfile" -t "$IMAGE" "$repo" \
    >"$store/build.log" 2>&1; then
    pass "podman build -f deploy/Dockerfile succeeded ($((SECONDS - start)) s; log $store/build.log)"
  else
    fail "podman build failed; tail of $store/build.log:"
    tail -30 "$store/build.log" | sed 's/^/      /'
    echo "$passed passed, $failed failed"
    exit 1
  fi
fi

if [ -f "$store/build.log" ]; then
  # The cook layer must hold every dependency the final build needs:
  # after COPY . ., only the workspace's own crates may compile.
  rebuilt="$(awk '/STEP [0-9]+\/[0-9]+: RUN cargo build /{f=1; next} /STEP [0-9]+\/[0-9]+:/{f=0} f && /^ *Compiling /{print $2}' \
    "$store/build.log" | sort -u)"
  deps="$(grep -v '^ossbridge-' <<<"$rebuilt" || true)"
  if [ -n "$rebuilt" ] && [ -z "$deps" ]; then
    pass "the final cargo build compiled only workspace crates ($(xargs <<<"$rebuilt")): the cooked dependencies were reused"
  elif [ -z "$rebuilt" ]; then
    pass "the final cargo build compiled nothing (cached layer)"
  else
    fail "the final cargo build recompiled dependencies the cook step should have cached: $(xargs <<<"$deps")"
  fi
fi

step "the image"
config="$(pm image inspect "$IMAGE" --format '{{.Config.User}}|{{json .Config.Cmd}}|{{json .Config.ExposedPorts}}')"
if [ "$config" = '65532:65532|["ossbridge-gateway","--config","/etc/ossbridge/gateway.toml"]|{"8080/tcp":{},"9090/tcp":{},"9091/tcp":{}}' ]; then
  pass "user 65532:65532, CMD ossbridge-gateway --config /etc/ossbridge/gateway.toml, ports 8080 9090 9091"
else
  fail "image config: $config"
fi
mnt="$(pm image mount "$IMAGE")"
bins="$(find "$mnt/usr/local/bin" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')"
if [ "$bins" = "ossbridge-gateway ossbridge-transfer " ]; then
  pass "/usr/local/bin holds exactly ossbridge-gateway and ossbridge-transfer"
else
  fail "/usr/local/bin holds: $bins"
fi
if [ ! -e "$mnt/bin/sh" ] && [ ! -e "$mnt/usr/bin/sh" ]; then
  pass "no shell in the image"
else
  fail "the image has a shell"
fi
pm image unmount "$IMAGE" >/dev/null

run=(pm run --rm --read-only --network host "${LIMITS[@]}")
rc=0
"${run[@]}" "$IMAGE" ossbridge-transfer --help >"$store/help.out" 2>&1 || rc=$?
if [ "$rc" = 0 ] && grep -q '^Usage: ' "$store/help.out"; then
  pass "podman run IMAGE ossbridge-transfer --help: exit 0"
else
  fail "ossbridge-transfer --help exited $rc: $(head -3 "$store/help.out")"
fi
rc=0
"${run[@]}" "$IMAGE" >"$store/noconf.out" 2>&1 || rc=$?
if [ "$rc" = 2 ] && grep -q '/etc/ossbridge/gateway.toml' "$store/noconf.out"; then
  pass "default command without a configuration: exit 2 naming /etc/ossbridge/gateway.toml"
else
  fail "default command without a configuration exited $rc: $(head -3 "$store/noconf.out")"
fi

step "the gateway in the image, configuration mounted read-only, root read-only"
"$repo/deploy/local/setup-emulator.sh"
python="${OSSBRIDGE_VENV:-$repo/.local/venv}/bin/python"
coproc MOTO { exec "$python" "$repo/deploy/local/moto_server.py" 0 2>"$store/moto.log"; }
moto="$MOTO_PID"
read -r -t 60 _ moto_port <&"${MOTO[0]}"
queue_url="$("$python" - "$moto_port" <<'PY'
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
print(sqs.create_queue(QueueName="ossbridge-jobs")["QueueUrl"])
PY
)"
read -r gw_port admin_port <<<"$("$python" "$repo/deploy/image/check_helper.py" free-ports 2)"
mkdir -p "$store/conf"
cat >"$store/conf/gateway.toml" <<EOF
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"
[aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:$moto_port"
[sources.check]
queue_url = "$queue_url"
[sources.check.verifier]
type = "api_key"
keys = ["image-check-key"]
EOF
chmod -R a+rX "$store/conf"
gw="$(pm run -d --read-only --network host "${LIMITS[@]}" -v "$store/conf:/etc/ossbridge:ro" \
  -e AWS_ACCESS_KEY_ID=test -e AWS_SECRET_ACCESS_KEY=test "$IMAGE")"
ok=
for _ in $(seq 300); do
  [ "$(curl -fsS --max-time 2 "http://127.0.0.1:$gw_port/healthz" 2>/dev/null)" = ok ] && { ok=1; break; }
  sleep 0.2
done
if [ -n "$ok" ]; then
  pass "gateway (default command): GET /healthz answers \"ok\""
else
  fail "gateway: no /healthz; logs: $(pm logs "$gw" 2>&1 | tail -3)"
fi
ready="$(curl -sS --max-time 5 "http://127.0.0.1:$gw_port/readyz" 2>&1 || true)"
if [ "$ready" = ready ]; then
  pass "gateway: GET /readyz answers \"ready\" (SQS reached)"
else
  fail "gateway: /readyz: $ready"
fi
pid="$(pm inspect "$gw" --format '{{.State.Pid}}')"
ids="$(awk '/^Uid:|^Gid:/{print $2}' "/proc/$pid/status" | tr '\n' ' ')"
if [ "$ids" = "65532 65532 " ]; then
  pass "gateway runs as uid/gid 65532"
else
  fail "gateway runs as uid/gid $ids"
fi
pm stop -t 30 "$gw" >/dev/null
code="$(pm inspect "$gw" --format '{{.State.ExitCode}}')"
if [ "$code" = 0 ]; then
  pass "gateway: podman stop (SIGTERM) -> exit 0"
else
  fail "gateway: exit $code after podman stop"
fi
pm logs "$gw" 2>&1 | tail -3 | sed 's/^/      gateway| /'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
