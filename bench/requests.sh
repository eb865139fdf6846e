#!/usr/bin/env bash
# Requests per copied object, counted by operation at proxies in front of
# the source and the destination (the test kit's S3 proxy, through
# `ossbridge-loadgen proxy`), for ossbridge and rclone in one run:
#
#   new        COUNT new objects of SIZE bytes, copied once
#   again      the same COUNT objects once more: duplicate events for
#              ossbridge, a second `rclone copy` for rclone
#
#   ossbridge  ossbridge-transfer draining one Data Transfer Hub
#              {"key","size"} message per object (PUT events)
#   rclone     `rclone copy SRC:source/small DST:rclone/small`, defaults
#
# The store is moto (the test suite's emulator, deploy/local/), which
# honours S3's conditional PutObject like S3 does; request counts do not
# depend on its speed. SQS and SSM calls go to it directly, uncounted.
#
#   bench/requests.sh
#   COUNT=1000 bench/requests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-500}
SIZE=${SIZE:-4096}
CONCURRENCY=${CONCURRENCY:-16}

command -v rclone >/dev/null || { echo "bench/requests.sh needs rclone (apt-get install rclone)" >&2; exit 1; }
deploy/local/setup-emulator.sh
cargo build --release --locked --quiet -p ossbridge-transfer -p ossbridge-bench
loadgen=target/release/ossbridge-loadgen
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# moto exits when its stdin closes: give it a pipe that stays open.
mkfifo "$work/moto.stdin"
sleep infinity >"$work/moto.stdin" &
pids+=("$!")
.local/venv/bin/python deploy/local/moto_server.py 0 <"$work/moto.stdin" >"$work/moto.out" 2>"$work/moto.log" &
pids+=("$!")
for _ in $(seq 100); do grep -q READY "$work/moto.out" 2>/dev/null && break; sleep 0.1; done
store="http://127.0.0.1:$(awk '/READY/ {print $2}' "$work/moto.out")"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
$loadgen populate --endpoint "$store" --bucket source --prefix small/ --count "$COUNT" --size "$SIZE" >/dev/null
$loadgen bucket --endpoint "$store" --name ossbridge
$loadgen bucket --endpoint "$store" --name rclone
$loadgen keys --endpoint "$store" --name /bench/oss-keys

# Starts a counting proxy in front of the store; sets $proxy_url, $proxy_pid
# and $proxy_out (where its counts land once it gets SIGTERM).
start_proxy() {
  proxy_out="$work/proxy-$1.json"
  $loadgen proxy --upstream "$store" >"$proxy_out" 2>"$work/proxy-$1.log" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 100); do [ -s "$proxy_out" ] && break; sleep 0.05; done
  proxy_url=$(head -1 "$proxy_out")
}
# Stops proxies (in this shell: `wait` needs its own children) and checks
# each wrote its counts.
stop_proxies() { # pid out ...
  while [ $# -gt 0 ]; do
    kill -TERM "$1"
    wait "$1" || true
    [ -n "$(sed -n 2p "$2")" ] || { echo "a proxy printed no counts: $(cat "${2%.json}.log")" >&2; exit 1; }
    shift 2
  done
}
counts() { sed -n 2p "$1"; }

metric() { # name{labels} -> value summed over matching series
  { curl -sf "http://127.0.0.1:$metrics_port/metrics" || true; } | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'
}
# One ossbridge pass: the queue holds one message per object; prints the
# proxies' counts as {"source": ..., "destination": ...}.
ossbridge_pass() {
  local pass=$1 queue pid src_pid src_out dst_pid dst_out
  start_proxy "ossbridge-$pass-source"; src_pid=$proxy_pid src_out=$proxy_out src=$proxy_url
  start_proxy "ossbridge-$pass-destination"; dst_pid=$proxy_pid dst_out=$proxy_out dst=$proxy_url
  queue=$($loadgen queue --endpoint "$store" --name "requests-$pass-$(date +%s%N)")
  $loadgen enqueue --endpoint "$store" --source-endpoint "$store" --bucket source --prefix small/ --queue-url "$queue" >/dev/null
  metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$work/transfer.toml" <<TOML
queue_url = "$queue"
[log]
level = "warn"
[aws]
region = "us-east-1"
endpoint_url = "$store"
[source]
bucket = "source"
endpoint_url = "$src"
region = "us-east-1"
credentials_parameter = "/bench/oss-keys"
force_path_style = true
[destination]
bucket = "ossbridge"
endpoint_url = "$dst"
force_path_style = true
[worker]
concurrency = $CONCURRENCY
wait_time_secs = 1
[metrics]
listen = "127.0.0.1:$metrics_port"
TOML
  target/release/ossbridge-transfer --config "$work/transfer.toml" 2>"$work/transfer-$pass.log" &
  pid=$!
  pids+=("$pid")
  until [ "$(metric 'ossbridge_transfer_messages_total{result="deleted"}')" -ge "$COUNT" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "ossbridge-transfer exited; log:" >&2; cat "$work/transfer-$pass.log" >&2; exit 1; }
    sleep 0.1
  done
  [ "$(metric ossbridge_transfer_failures_total)" = 0 ] || { echo "ossbridge: failed copies" >&2; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || true
  stop_proxies "$src_pid" "$src_out" "$dst_pid" "$dst_out"
  echo "{\"source\": $(counts "$src_out"), \"destination\": $(counts "$dst_out")}"
}

export RCLONE_CONFIG=$work/rclone.conf
touch "$RCLONE_CONFIG"
rclone_pass() {
  local pass=$1 src_pid src_out dst_pid dst_out
  start_proxy "rclone-$pass-source"; src_pid=$proxy_pid src_out=$proxy_out
  export RCLONE_CONFIG_SRC_ENDPOINT=$proxy_url
  start_proxy "rclone-$pass-destination"; dst_pid=$proxy_pid dst_out=$proxy_out
  export RCLONE_CONFIG_DST_ENDPOINT=$proxy_url
  for name in SRC DST; do
    export "RCLONE_CONFIG_${name}_TYPE=s3" "RCLONE_CONFIG_${name}_PROVIDER=Other" \
      "RCLONE_CONFIG_${name}_ACCESS_KEY_ID=bench" "RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY=bench" \
      "RCLONE_CONFIG_${name}_REGION=us-east-1"
  done
  # This machine sets AWS_CA_BUNDLE, which rclone 1.60 rejects.
  env -u AWS_CA_BUNDLE rclone copy SRC:source/small DST:rclone/small >"$work/rclone-$pass.log" 2>&1
  stop_proxies "$src_pid" "$src_out" "$dst_pid" "$dst_out"
  echo "{\"source\": $(counts "$src_out"), \"destination\": $(counts "$dst_out")}"
}

ossbridge_new=$(ossbridge_pass new)
ossbridge_again=$(ossbridge_pass again)
rclone_new=$(rclone_pass new)
rclone_again=$(rclone_pass again)

# Both copies are whole: COUNT objects, COUNT x SIZE bytes.
export RCLONE_CONFIG_STORE_TYPE=s3 RCLONE_CONFIG_STORE_PROVIDER=Other \
  RCLONE_CONFIG_STORE_ENDPOINT="$store" RCLONE_CONFIG_STORE_ACCESS_KEY_ID=bench \
  RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY=bench RCLONE_CONFIG_STORE_REGION=us-east-1
for bucket in ossbridge rclone; do
  got=$(env -u AWS_CA_BUNDLE rclone size --json "STORE:$bucket/small" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["count"], d["bytes"])')
  [ "$got" = "$COUNT $((COUNT * SIZE))" ] || { echo "$bucket holds $got" >&2; exit 1; }
done

mkdir -p bench/results
out="bench/results/requests-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$out" "$COUNT" "$SIZE" "$(rclone version | head -1)" \
  "$ossbridge_new" "$ossbridge_again" "$rclone_new" "$rclone_again" <<'PY'
import json, sys
out, count, size, rclone_version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
runs = dict(zip(["ossbridge_new", "ossbridge_again", "rclone_new", "rclone_again"],
                (json.loads(a) for a in sys.argv[5:9])))
result = {"objects": count, "size": size, "rclone_version": rclone_version, "runs": {}}
print(f"{'run':<18} {'side':<12} {'requests/object':>15}  by operation (per object)")
for name, run in runs.items():
    entry = {}
    for side in ("source", "destination"):
        ops = run[side]["operations"]
        total = sum(ops.values())
        entry[side] = {"requests": total, "per_object": total / count, "operations": ops,
                       "refused": run[side]["refused"]}
        detail = ", ".join(f"{op} {n / count:.3f}" for op, n in sorted(ops.items()))
        if run[side]["refused"]:
            detail += " (refused: " + ", ".join(f"{op} {n / count:.3f}" for op, n in sorted(run[side]["refused"].items())) + ")"
        print(f"{name:<18} {side:<12} {total / count:>15.3f}  {detail}")
    entry["per_object"] = (entry["source"]["requests"] + entry["destination"]["requests"]) / count
    result["runs"][name] = entry
json.dump(result, open(out, "w"), indent=2)
print(f"wrote {out}")
PY
