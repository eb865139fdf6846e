# Sourced by the bench scripts (from the repository root, with `packages`
# set to the cargo packages to build): the emulator's virtualenv, release
# binaries, a scratch directory and cleanup of every process started.
venv=.local/bench-venv
if [ ! -x "$venv/bin/ministack" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
fi
cargo build --release --locked --quiet "${packages[@]}" -p ossbridge-bench
loadgen=target/release/ossbridge-loadgen

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# Starts a ministack on a free loopback port for `name` (its log goes to
# $work/ministack-NAME.log); sets $endpoint and $emulator_pid.
start_emulator() {
  local port
  port=$(free_port)
  BIND_HOST=127.0.0.1 GATEWAY_PORT=$port "$venv/bin/ministack" >"$work/ministack-$1.log" 2>&1 &
  emulator_pid=$!
  pids+=("$emulator_pid")
  endpoint="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "$endpoint/_localstack/health" >/dev/null && break; sleep 0.2; done
}
# The benchmark gateway's TLS certificate (in $work/tls) and the Standard
# Webhooks $secret the load generator signs with.
gateway_credentials() {
  $loadgen cert "$work/tls"
  secret="whsec_$(head -c 24 /dev/urandom | base64)"
}
# Starts the benchmark SQS sink (bench/src/sqs_sink.rs); sets $sink.
start_sink() {
  $loadgen sqs-sink >"$work/sink.out" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/sink.out" ] && break; sleep 0.05; done
  sink=$(head -1 "$work/sink.out")
}
# Waits until the gateway whose admin listener is on port $1 is ready.
wait_gateway_ready() {
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && break; sleep 0.2; done
}
# Process $1's user + system CPU so far, in clock ticks (getconf CLK_TCK).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Appends the gateway's SQS batching to config $1: LINGER_MS
# (sqs.batch_linger_ms, 2 by default) and LINGER_WHEN_IDLE
# (sqs.batch_linger_when_idle, true by default).
gateway_batching_toml() {
  printf '[sqs]\nbatch_linger_ms = %s\nbatch_linger_when_idle = %s\n' \
    "${LINGER_MS:-2}" "${LINGER_WHEN_IDLE:-true}" >>"$1"
}
# Writes the benchmark gateway's config to $1: the public listener on port
# $2 with TLS from $work/tls (`gateway_credentials`), the admin
# listener on $3, SQS at $4, no rate limit, warnings-only JSON logs, and
# one Standard Webhooks source signed with $secret per NAME=QUEUE_URL
# argument after those.
gateway_toml() {
  local file=$1 port=$2 admin_port=$3 sqs=$4 source
  shift 4
  cat >"$file" <<TOML
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin_port"
[log]
format = "json"
level = "warn"
[aws]
region = "us-east-1"
endpoint_url = "$sqs"
[tls]
cert_file = "$work/tls/cert.pem"
key_file = "$work/tls/key.pem"
[rate_limit]
global_per_second = 0
TOML
  for source in "$@"; do
    cat >>"$file" <<TOML
[sources.${source%%=*}]
queue_url = "${source#*=}"
[sources.${source%%=*}.verifier]
type = "standard_webhooks"
secrets = ["$secret"]
TOML
  done
}
