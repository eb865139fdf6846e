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
