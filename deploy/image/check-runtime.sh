#!/usr/bin/env bash
# Checks the container image's runtime contract (deploy/Dockerfile) on a
# machine without a container engine or registry access: builds the two
# release binaries exactly as the Dockerfile does, assembles a root
# filesystem with what gcr.io/distroless/cc-debian12:nonroot holds (from
# the same Debian 12 packages distroless is built from), and runs the
# binaries in it as the image would: uid/gid 65532, no supplementary
# groups, no capabilities, PID 1 of their own PID namespace, the root and
# the configuration mounted read-only, nothing but the image's files.
# Against the moto emulator behind a local TLS endpoint it then checks
# /healthz, /readyz, one webhook end to end (gateway -> SQS -> transfer ->
# S3), exit 0 on SIGTERM, the transfer's CLI and config errors, and (with
# strace) that neither service tries to write to the filesystem.
#
#   sudo deploy/image/check-runtime.sh [--no-build] [--keep] [--work-dir DIR]
#   sudo deploy/image/check-runtime.sh --root-only DIR   (just assemble the root)
#
# Root is needed (mount namespaces, chroot, setuid). Needs util-linux
# (unshare), dpkg-deb + apt-get download (Debian/Ubuntu host with package
# lists: run `apt-get update` once), openssl, curl, binutils; strace for
# the no-write check (skipped, not failed, without it). The release build
# takes a while on a small machine (it runs under nice); --no-build reuses
# target/release (or $CARGO_TARGET_DIR/release, as cargo). Rerunnable:
# the work directory (default target/image-check, a few hundred MB) is
# rebuilt each run and removed at the end unless --keep. Not part of CI
# (release build). Prints PASS/FAIL per check and exits non-zero if any
# check failed.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
build=1
keep=0
root_only=
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
work="$target_dir/image-check"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    --work-dir) work="$2"; shift ;;
    --root-only) root_only="$2"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# The image's user and what distroless/cc-debian12 is made of: base
# (base-files, netbase, tzdata, CA certificates, glibc, OpenSSL) + cc
# (libgcc, libgomp, libstdc++).
UID_GID=65532
IMAGE_DEBS=(base-files netbase tzdata ca-certificates libc6 libssl3 libgcc-s1 libgomp1 libstdc++6)
# Shared libraries the binaries may need: glibc's and libgcc_s (no libssl:
# TLS is rustls on aws-lc, linked statically).
ALLOWED_LIBS='^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'
BINS=(ossbridge-gateway ossbridge-transfer)

passed=0
failed=0
skipped=0
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }
skip() { echo "SKIP  $*"; skipped=$((skipped + 1)); }
note() { echo "      $*"; }
step() { echo "==> $*"; }

# The root of gcr.io/distroless/cc-debian12:nonroot, rebuilt from the
# Debian packages it is made of (data only: no maintainer script runs),
# with its users, directories and the CA bundle update-ca-certificates
# would write (the Mozilla set).
assemble_root() { # ROOT DEBS_DIR
  local root="$1" debs="$2"
  mkdir -p "$root" "$debs"
  (cd "$debs" && TMPDIR="$debs" apt-get download "${IMAGE_DEBS[@]}" >"$debs/apt-download.log" 2>&1) || {
    cat "$debs/apt-download.log" >&2
    echo "apt-get download failed (run apt-get update?)" >&2
    exit 1
  }
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$root"
  done
  # Only the data: no maintainer scripts ran, so no shell is needed, and
  # none is there (distroless has none either). Drop the one admin script.
  rm -f "$root/usr/sbin/update-ca-certificates"
  mkdir -p "$root"/{etc/ssl/certs,etc/ossbridge,home/nonroot,root,tmp,proc,sys,dev,usr/local/bin}
  chmod 0700 "$root/root"
  chmod 1777 "$root/tmp"
  chown "$UID_GID:$UID_GID" "$root/home/nonroot"
  chmod 0700 "$root/home/nonroot"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  # A runtime supplies /etc/hosts (Docker, ECS); a static one here.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  for dev in null zero full random urandom; do : >"$root/dev/$dev"; done
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
}

if [ "$(id -u)" != 0 ]; then
  echo "check-runtime.sh: run as root (mount namespaces, chroot, setuid)" >&2
  exit 2
fi
for tool in unshare dpkg-deb apt-get openssl curl readelf objdump; do
  command -v "$tool" >/dev/null || { echo "check-runtime.sh: $tool is missing" >&2; exit 2; }
done
if [ -n "$root_only" ]; then
  # Only the distroless-equivalent root, e.g. to import as a stand-in base
  # image (deploy/image/podman-build.sh).
  assemble_root "$root_only" "$root_only.debs"
  rm -rf "$root_only.debs"
  exit 0
fi

rootfs="$work/rootfs"
conf="$work/conf"
logs="$work/logs"
pids=()
descendants() { # PID -> its descendants, deepest first
  local child
  for child in $(cat "/proc/$1/task/$1/children" 2>/dev/null || true); do
    descendants "$child"
    echo "$child"
  done
}
kill_tree() { # PID: SIGKILL it and everything under it (unshare and strace
  # ignore SIGTERM while their child runs)
  local pid
  for pid in $(descendants "$1") "$1"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill_tree "$pid"
  done
  wait 2>/dev/null || true
  if [ "$keep" = 0 ]; then
    rm -rf "$work"
  else
    echo "kept $work (logs in $logs)"
  fi
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work/debs" "$work/tmp" "$rootfs" "$conf/gateway" "$conf/transfer" "$conf/transfer-bad" "$logs"
# apt, moto and the helpers keep their temporary files in the work
# directory too (the services themselves get a clean environment).
export TMPDIR="$work/tmp"

# --------------------------------------------------------------------
step "Dockerfile: build selection"
dockerfile="$repo/deploy/Dockerfile"
selection='-p ossbridge-gateway -p ossbridge-transfer --bins'
build_line="$(grep -E '^RUN cargo build ' "$dockerfile" || true)"
cook_line="$(grep -A1 -E '^RUN cargo chef cook ' "$dockerfile" | tr -d '\\\n' | tr -s ' ' || true)"
if [[ "$build_line" == *"--release --locked $selection"* ]]; then
  pass "Dockerfile builds exactly the two service binaries ($selection)"
else
  fail "Dockerfile build line is not 'cargo build --release --locked $selection': $build_line"
fi
if [[ "$cook_line" == *"--release"* && "$cook_line" == *"$selection"* ]]; then
  pass "cargo chef cook selects the same packages and targets"
else
  fail "cargo chef cook does not select '$selection' in release: $cook_line"
fi

# --------------------------------------------------------------------
if [ "$build" = 1 ]; then
  step "building the release binaries as the Dockerfile does"
  # shellcheck disable=SC2086 # $selection is a list of arguments
  (cd "$repo" && nice -n 10 cargo build --release --locked $selection)
fi
for bin in "${BINS[@]}"; do
  [ -x "$target_dir/release/$bin" ] || { echo "missing $target_dir/release/$bin (drop --no-build)" >&2; exit 1; }
done

# --------------------------------------------------------------------
step "assembling a distroless/cc-debian12-equivalent root in $rootfs"
assemble_root "$rootfs" "$work/debs"

# A throwaway CA and a certificate for 127.0.0.1: every AWS call of the
# services goes over TLS to a local endpoint, so it succeeds only if they
# read the image's CA bundle. The bundle is the Mozilla set (what
# update-ca-certificates would write) plus this CA.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ossbridge image check CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$work/tls.key" -out "$work/tls.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$work/tls.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/tls.ext" -out "$work/tls.pem" >/dev/null 2>&1
cat "$work/ca.pem" >>"$rootfs/etc/ssl/certs/ca-certificates.crt"

# COPY --from=builder /out/ /usr/local/bin/ (install -m 0755, root-owned)
for bin in "${BINS[@]}"; do
  install -m 0755 -o 0 -g 0 "$target_dir/release/$bin" "$rootfs/usr/local/bin/$bin"
done
glibc="$(dpkg-deb -f "$(ls "$work"/debs/libc6_*.deb)" Version)"
note "rootfs: $(du -sh "$rootfs" | cut -f1), glibc $glibc, packages: ${IMAGE_DEBS[*]}"

if [ ! -e "$rootfs/bin/sh" ] && [ ! -e "$rootfs/usr/bin/sh" ] && [ ! -e "$rootfs/bin/bash" ]; then
  pass "the root has no shell (as distroless)"
else
  fail "the assembled root has a shell"
fi

# --------------------------------------------------------------------
step "linkage"
glibc_max="${glibc%%-*}"
for bin in "${BINS[@]}"; do
  path="$rootfs/usr/local/bin/$bin"
  needed="$(readelf -d "$path" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort)"
  extra="$(grep -Ev "$ALLOWED_LIBS" <<<"$needed" || true)"
  if [ -z "$extra" ]; then
    pass "$bin: NEEDED only $(tr '\n' ' ' <<<"$needed")"
  else
    fail "$bin: links libraries distroless/cc may not have or that are unexpected: $(tr '\n' ' ' <<<"$extra")"
  fi
  # ldd, transitively, with the host's loader: nothing missing, nothing
  # outside the allowed set (no libssl, libcrypto, libstdc++).
  resolved="$(ldd "$path" | awk '{print $1}' | sed 's#.*/##' | sort -u)"
  extra="$(grep -Ev "$ALLOWED_LIBS" <<<"$resolved" || true)"
  if ldd "$path" | grep -q 'not found'; then
    fail "$bin: ldd reports a missing library"
  elif [ -n "$extra" ]; then
    fail "$bin: ldd resolves unexpected libraries: $(tr '\n' ' ' <<<"$extra")"
  else
    pass "$bin: ldd resolves only $(tr '\n' ' ' <<<"$resolved")"
  fi
  newest="$(objdump -T "$path" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
  if [ "$(printf '%s\n%s\n' "$newest" "$glibc_max" | sort -V | tail -1)" = "$glibc_max" ]; then
    pass "$bin: needs glibc symbols up to $newest (the image has $glibc_max)"
  else
    fail "$bin: needs GLIBC_$newest, newer than the image's glibc $glibc_max"
  fi
done

# --------------------------------------------------------------------
# Running a command the way the image would.
#
# A private mount namespace binds the root onto itself, binds the device
# nodes a runtime provides and the configuration directory, and makes the
# root and the configuration read-only; a second unshare gives the
# process its own PID namespace (it is PID 1, as in a container) and
# /proc, chroots into the root and drops to 65532:65532 with no
# supplementary groups (setuid from root also clears every capability).
# The environment is what the image sets (PATH, HOME of "nonroot") plus
# the AWS credentials a task role would provide.
IMAGE_ENV=(
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HOME=/home/nonroot
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  AWS_EC2_METADATA_DISABLED=true
)
EXTRA_ENV=() # more variables for one run (the configuration, as on ECS)
image_cmd() { # CONF_DIR CMD [ARGS...]: sets IMAGE_CMD to run CMD in the image
  local confdir="$1"
  shift
  # shellcheck disable=SC2016 # expanded by the inner bash
  IMAGE_CMD=(unshare --mount --propagation private -- "$BASH" -c '
    set -e
    root="$1"; confdir="$2"; id="$3"; n="$4"; shift 4
    env=("${@:1:$n}"); shift "$n"
    mount --bind "$root" "$root"
    for dev in null zero full random urandom; do mount --bind "/dev/$dev" "$root/dev/$dev"; done
    mount --bind "$confdir" "$root/etc/ossbridge"
    mount -o remount,bind,ro "$root/etc/ossbridge"
    mount -o remount,bind,ro,nosuid "$root"
    # Like a container runtime, pass on no descriptor but 0, 1 and 2.
    for fd in /proc/$$/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec env -i "${env[@]}" unshare --pid --fork --kill-child --mount-proc \
      --root="$root" --setgid "$id" --setuid "$id" -- "$@"
  ' in_image "$rootfs" "$confdir" "$UID_GID" "$((${#IMAGE_ENV[@]} + ${#EXTRA_ENV[@]}))" \
    "${IMAGE_ENV[@]}" "${EXTRA_ENV[@]}" "$@")
}
in_image() { # CONF_DIR CMD [ARGS...]
  image_cmd "$@"
  "${IMAGE_CMD[@]}"
}

# strace, when present, records every filesystem-changing call (and
# execve, to know where the service itself starts).
WRITE_CALLS=open,openat,openat2,creat,mkdir,mkdirat,rmdir,unlink,unlinkat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,truncate,chmod,fchmodat,chown,lchown,fchownat,mknod,mknodat,utimensat,execve
traced_in_image() { # LOG CONF_DIR CMD [ARGS...]: in_image, under strace if available
  local log="$1"
  shift
  image_cmd "$@"
  if command -v strace >/dev/null; then
    strace -f -qq -o "$log" -e trace="$WRITE_CALLS" "${IMAGE_CMD[@]}"
  else
    "${IMAGE_CMD[@]}"
  fi
}
# Filesystem writes the service attempted: the traced calls after the
# execve of /usr/local/bin/BIN that create, change or open for writing.
writes_of() { # LOG BIN
  awk -v bin="/usr/local/bin/$2" '
    !started && index($0, "execve(\"" bin "\"") && / = 0$/ { started = 1; next }
    !started { next }
    /(open|openat|openat2|creat)\(/ && /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/ { print; next }
    /(mkdir|mkdirat|rmdir|unlink|unlinkat|rename|renameat|renameat2|link|linkat|symlink|symlinkat|truncate|chmod|fchmodat|chown|lchown|fchownat|mknod|mknodat|utimensat)\(/ { print }
  ' "$1"
}
check_writes() { # LOG BIN
  if ! command -v strace >/dev/null; then
    skip "$2: no-write check (install strace)"
    return
  fi
  if ! grep -q "execve(\"/usr/local/bin/$2\".* = 0$" "$1"; then
    fail "$2: strace did not see the service start"
    return
  fi
  local writes
  writes="$(writes_of "$1" "$2")"
  if [ -z "$writes" ]; then
    pass "$2: attempted no filesystem write (strace: no create/unlink/rename/chmod, no open for writing)"
  else
    fail "$2: attempted filesystem writes:"
    head -20 <<<"$writes" | sed 's/^/      /'
  fi
}
service_pid() { # TOP_PID -> host PID of the ossbridge process among its descendants
  local pids pid exe next _
  for _ in $(seq 300); do
    pids="$1"
    while [ -n "$pids" ]; do
      next=
      for pid in $pids; do
        exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
        case "$exe" in
          "$rootfs"/usr/local/bin/ossbridge-*) echo "$pid"; return 0 ;;
        esac
        next="$next $(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)"
      done
      pids="$(xargs <<<"$next")"
    done
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
check_identity() { # NAME PID
  local status root_opts
  status="$(cat "/proc/$2/status")"
  local uid gid groups capeff nspid
  uid="$(awk '/^Uid:/{print $2, $3, $4, $5}' <<<"$status")"
  gid="$(awk '/^Gid:/{print $2, $3, $4, $5}' <<<"$status")"
  groups="$(awk '/^Groups:/{$1=""; print}' <<<"$status" | xargs)"
  capeff="$(awk '/^CapEff:/{print $2}' <<<"$status")"
  nspid="$(awk '/^NSpid:/{print $NF}' <<<"$status")"
  if [ "$uid" = "65532 65532 65532 65532" ] && [ "$gid" = "65532 65532 65532 65532" ] &&
    [ -z "$groups" ] && [ "$capeff" = 0000000000000000 ]; then
    pass "$1: runs as uid/gid 65532, no supplementary groups, no capabilities, PID $nspid in its namespace"
  else
    fail "$1: identity uid=[$uid] gid=[$gid] groups=[$groups] CapEff=$capeff"
  fi
  root_opts="$(awk '$5 == "/" {print $6}' "/proc/$2/mountinfo" | head -1)"
  if [[ ",$root_opts," == *",ro,"* ]] && [ "$(readlink "/proc/$2/root")" = "$rootfs" ]; then
    pass "$1: its / is the image root, mounted read-only ($root_opts)"
  else
    fail "$1: root $(readlink "/proc/$2/root") mounted $root_opts"
  fi
}
wait_http() { # URL EXPECTED_BODY SECONDS -> 0 when GET URL answers 200 with that body
  local deadline=$((SECONDS + $3)) body
  while [ $SECONDS -lt "$deadline" ]; do
    body="$(curl -fsS --max-time 2 "$1" 2>/dev/null || true)"
    [ "$body" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
stop_and_check() { # NAME TOP_PID SERVICE_PID SECONDS
  kill -TERM "$3"
  local deadline=$((SECONDS + $4)) rc
  while kill -0 "$3" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do sleep 0.1; done
  if kill -0 "$3" 2>/dev/null; then
    fail "$1: still running $4 s after SIGTERM"
    kill_tree "$2"
  fi
  rc=0
  wait "$2" || rc=$?
  if [ "$rc" = 0 ]; then
    pass "$1: exits 0 on SIGTERM (as PID 1)"
  else
    fail "$1: exited $rc on SIGTERM"
  fi
}

# --------------------------------------------------------------------
step "the local AWS side: moto behind a TLS endpoint"
"$repo/deploy/local/setup-emulator.sh"
python="${OSSBRIDGE_VENV:-$repo/.local/venv}/bin/python"
helper=("$python" "$repo/deploy/image/check_helper.py")
# Both print "READY <port>", then serve until their stdin closes: this
# script holds the write end of a FIFO on their stdin.
start_ready() { # NAME CMD [ARGS...] -> sets ready_port
  local name="$1" _word
  shift
  mkfifo "$work/$name.in"
  # shellcheck disable=SC2034 # only held open, for the life of the script
  exec {fd}<>"$work/$name.in"
  "$@" <"$work/$name.in" >"$work/$name.out" 2>"$logs/$name.log" &
  pids+=("$!")
  for _ in $(seq 600); do
    if read -r _word ready_port <"$work/$name.out" && [ -n "$ready_port" ]; then
      return 0
    fi
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$logs/$name.log" >&2
  exit 1
}
start_ready moto "$python" "$repo/deploy/local/moto_server.py" 0
moto_port="$ready_port"
start_ready tls-proxy "${helper[@]}" tls-proxy "$work/tls.pem" "$work/tls.key" "$moto_port"
tls_port="$ready_port"
plain="http://127.0.0.1:$moto_port"
endpoint="https://127.0.0.1:$tls_port"
queue_url="$("${helper[@]}" setup "$plain")"
tls_queue_url="${queue_url/http:\/\/127.0.0.1:$moto_port/$endpoint}"
note "moto $plain, TLS endpoint $endpoint (certificate from the check's CA)"
read -r gw_port admin_port metrics_port env_port env_admin_port <<<"$("${helper[@]}" free-ports 5)"

# --------------------------------------------------------------------
step "ossbridge-gateway --config /etc/ossbridge/gateway.toml (the image's CMD)"
cat >"$conf/gateway/gateway.toml" <<EOF
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"
[log]
format = "json"
level = "info"
[aws]
region = "us-east-1"
endpoint_url = "$endpoint"
[sources.check]
queue_url = "$tls_queue_url"
format = "oss_events"
[sources.check.verifier]
type = "api_key"
keys = ["image-check-key"]
EOF
chmod -R a+rX "$conf"
traced_in_image "$logs/gateway.strace" "$conf/gateway" \
  /usr/local/bin/ossbridge-gateway --config /etc/ossbridge/gateway.toml >"$logs/gateway.log" 2>&1 &
top=$!
pids+=("$top")
if gw="$(service_pid "$top")" && wait_http "http://127.0.0.1:$gw_port/healthz" ok 60; then
  pass "gateway: GET /healthz answers 200 \"ok\""
  check_identity gateway "$gw"
  if wait_http "http://127.0.0.1:$gw_port/readyz" ready 30; then
    pass "gateway: GET /readyz answers 200 \"ready\" (SQS reached over TLS, verified with the image's CA bundle)"
  else
    fail "gateway: /readyz is not ready: $(curl -sS --max-time 5 "http://127.0.0.1:$gw_port/readyz" 2>&1)"
  fi
  if curl -fsS --max-time 5 "http://127.0.0.1:$admin_port/metrics" | grep -q '^# TYPE'; then
    pass "gateway: GET /metrics on admin_listen answers"
  else
    fail "gateway: no /metrics on admin_listen"
  fi
  code="$("${helper[@]}" event | curl -sS --max-time 15 -o "$logs/ingest.out" -w '%{http_code}' \
    -H 'content-type: application/json' -H 'x-api-key: image-check-key' --data-binary @- \
    "http://127.0.0.1:$gw_port/v1/ingest/check" || true)"
  depth="$("${helper[@]}" queue-depth "$plain")"
  if [[ "$code" == 2* ]] && [ "$depth" = 1 ]; then
    pass "gateway: POST /v1/ingest/check -> $code, one message on the queue"
  else
    fail "gateway: POST /v1/ingest/check -> $code $(cat "$logs/ingest.out"), queue depth $depth"
  fi
  stop_and_check gateway "$top" "$gw" 30
  check_writes "$logs/gateway.strace" ossbridge-gateway
else
  fail "gateway: no 200 \"ok\" from /healthz within 60 s"
  kill_tree "$top"
  wait "$top" 2>/dev/null || true
fi
sed 's/^/      gateway| /' "$logs/gateway.log" | tail -5

# --------------------------------------------------------------------
step "ossbridge-gateway configured by OSSBRIDGE_* alone, no --config (as aws/ossbridge.yaml runs it)"
mkdir -p "$conf/empty"
EXTRA_ENV=(
  "OSSBRIDGE_LISTEN=127.0.0.1:$env_port"
  "OSSBRIDGE_ADMIN_LISTEN=127.0.0.1:$env_admin_port"
  OSSBRIDGE_LOG__FORMAT=json
  OSSBRIDGE_AWS__REGION=us-east-1
  "OSSBRIDGE_AWS__ENDPOINT_URL=$endpoint"
  OSSBRIDGE_LIMITS__SHUTDOWN_GRACE_SECS=20
  "OSSBRIDGE_SOURCES__check__QUEUE_URL=$tls_queue_url"
  OSSBRIDGE_SOURCES__check__VERIFIER__TYPE=api_key
  "OSSBRIDGE_SOURCES__check__VERIFIER__KEYS=[image-check-key]"
)
in_image "$conf/empty" /usr/local/bin/ossbridge-gateway >"$logs/gateway-env.log" 2>&1 &
top=$!
pids+=("$top")
EXTRA_ENV=()
if gw="$(service_pid "$top")" && wait_http "http://127.0.0.1:$env_port/healthz" ok 60 &&
  wait_http "http://127.0.0.1:$env_port/readyz" ready 30; then
  pass "gateway (environment only): /healthz \"ok\", /readyz \"ready\""
  stop_and_check "gateway (environment only)" "$top" "$gw" 30
else
  fail "gateway (environment only): not healthy and ready within 90 s: $(tail -3 "$logs/gateway-env.log")"
  kill_tree "$top"
  wait "$top" 2>/dev/null || true
fi

step "ossbridge-transfer"
for args in "--help" "sync --help"; do
  rc=0
  # shellcheck disable=SC2086 # $args is a list of arguments
  in_image "$conf/transfer" /usr/local/bin/ossbridge-transfer $args >"$logs/transfer-help.out" 2>&1 || rc=$?
  if [ "$rc" = 0 ] && grep -q '^Usage: ' "$logs/transfer-help.out"; then
    pass "transfer: '$args' exits 0 with usage"
  else
    fail "transfer: '$args' exited $rc: $(head -3 "$logs/transfer-help.out")"
  fi
done

transfer_config() { # CREDENTIALS_LINE
  cat <<EOF
queue_url = "$tls_queue_url"
[log]
format = "json"
level = "info"
[aws]
region = "us-east-1"
endpoint_url = "$endpoint"
[source]
bucket = "oss-source"
endpoint_url = "$endpoint"
region = "us-east-1"
$1
force_path_style = true
[destination]
bucket = "s3-destination"
force_path_style = true
[worker]
wait_time_secs = 1
shutdown_grace_secs = 5
[metrics]
listen = "127.0.0.1:$metrics_port"
EOF
}
transfer_config "" >"$conf/transfer-bad/transfer.toml"
chmod -R a+rX "$conf"
rc=0
in_image "$conf/transfer-bad" /usr/local/bin/ossbridge-transfer --config /etc/ossbridge/transfer.toml \
  >"$logs/transfer-bad.out" 2>&1 || rc=$?
if [ "$rc" = 2 ] && grep -q 'source.credentials_parameter' "$logs/transfer-bad.out"; then
  pass "transfer: a config without credentials_parameter exits 2 naming source.credentials_parameter"
else
  fail "transfer: config without credentials exited $rc: $(head -3 "$logs/transfer-bad.out")"
fi
note "$(grep -m1 'credentials_parameter' "$logs/transfer-bad.out" || true)"

transfer_config 'credentials_parameter = "/ossbridge/oss-keys"' >"$conf/transfer/transfer.toml"
chmod -R a+rX "$conf"
traced_in_image "$logs/transfer.strace" "$conf/transfer" \
  /usr/local/bin/ossbridge-transfer --config /etc/ossbridge/transfer.toml >"$logs/transfer.log" 2>&1 &
top=$!
pids+=("$top")
if tr="$(service_pid "$top")" && wait_http "http://127.0.0.1:$metrics_port/healthz" ok 60; then
  pass "transfer: GET /healthz on metrics.listen answers 200 \"ok\""
  check_identity transfer "$tr"
  deadline=$((SECONDS + 60))
  copied=1
  while [ $SECONDS -lt "$deadline" ]; do
    copied=0
    "${helper[@]}" copied "$plain" || copied=$?
    [ "$copied" = 0 ] && break
    sleep 0.5
  done
  depth="$("${helper[@]}" queue-depth "$plain")"
  if [ "$copied" = 0 ] && [ "$depth" = 0 ]; then
    pass "transfer: copied the object to the destination byte for byte (SSM keys, S3 and SQS over TLS); queue empty"
  else
    fail "transfer: object not copied (check $copied) or queue not empty ($depth) within 60 s"
  fi
  stop_and_check transfer "$top" "$tr" 30
  check_writes "$logs/transfer.strace" ossbridge-transfer
else
  fail "transfer: no 200 \"ok\" from /healthz within 60 s"
  kill_tree "$top"
  wait "$top" 2>/dev/null || true
fi
sed 's/^/      transfer| /' "$logs/transfer.log" | tail -5

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
