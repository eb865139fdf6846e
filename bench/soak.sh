#!/usr/bin/env bash
# Soak: the whole pipeline at a steady load for a long time, to show that
# nothing accumulates. Signed OSS events go over TLS to ossbridge-gateway,
# which batches them into SQS; ossbridge-transfer drains the queue and
# copies each object from the source S3 emulator (standing in for OSS) to
# the destination one. Three ministack processes on 127.0.0.1: source,
# destination, and SQS + SSM.
#
# Every SAMPLE_SECS the script records both services' RSS and open file
# descriptors and the queue's depth (bench/results/soak-*.csv); at the end
# it waits for the queue to drain, compares the buckets object by object
# and prints the first and last tenth of the run side by side
# (bench/results/soak-*.json). Not part of CI: it runs for 30 minutes.
#
#   bench/soak.sh                          # 30 minutes at 20 events/s
#   SECONDS_TOTAL=300 RATE=50 bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${SECONDS_TOTAL:-1800}
RATE=${RATE:-20}
POOL=${POOL:-1000}
SIZE=${SIZE:-16384}
SAMPLE_SECS=${SAMPLE_SECS:-30}
CONCURRENCY=${CONCURRENCY:-32}

packages=(-p ossbridge-gateway -p ossbridge-transfer)
. bench/common.sh

start_emulator source
src=$endpoint
start_emulator destination
dst=$endpoint
start_emulator aws
aws=$endpoint

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
run_id=$(date +%s)
queue=$($loadgen queue --endpoint "$aws" --name "soak-$run_id")
$loadgen bucket --endpoint "$src" --name source
$loadgen bucket --endpoint "$dst" --name destination
$loadgen keys --endpoint "$aws" --name /soak/oss-keys
gateway_credentials

gw_port=$(free_port) gw_admin=$(free_port) tr_metrics=$(free_port)
gateway_toml "$work/gateway.toml" "$gw_port" "$gw_admin" "$aws" "soak=$queue"
cat >"$work/transfer.toml" <<TOML
queue_url = "$queue"
[log]
format = "json"
level = "warn"
[aws]
region = "us-east-1"
endpoint_url = "$aws"
[source]
bucket = "source"
endpoint_url = "$src"
region = "us-east-1"
credentials_parameter = "/soak/oss-keys"
force_path_style = true
[destination]
bucket = "destination"
endpoint_url = "$dst"
force_path_style = true
[worker]
concurrency = $CONCURRENCY
receivers = 2
wait_time_secs = 5
[metrics]
listen = "127.0.0.1:$tr_metrics"
TOML
target/release/ossbridge-gateway --config "$work/gateway.toml" 2>"$work/gateway.log" &
gw_pid=$!
pids+=("$gw_pid")
target/release/ossbridge-transfer --config "$work/transfer.toml" 2>"$work/transfer.log" &
tr_pid=$!
pids+=("$tr_pid")
wait_gateway_ready "$gw_admin"

metric() { # port, name{labels} -> value summed over matching series
  { curl -sf "http://127.0.0.1:$1/metrics" || true; } | awk -v m="$2" 'index($0, m) == 1 {s += $NF} END {print s + 0}'
}
sample() { # one CSV row
  local elapsed=$1 gw_rss gw_fds tr_rss tr_fds depth
  for p in "$gw_pid" "$tr_pid"; do kill -0 "$p" 2>/dev/null || { echo "soak: process $p died" >&2; exit 1; }; done
  gw_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$gw_pid/status")
  tr_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$tr_pid/status")
  gw_fds=$(find "/proc/$gw_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  tr_fds=$(find "/proc/$tr_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  depth=$($loadgen depth --endpoint "$aws" --queue-url "$queue")
  echo "$elapsed,$gw_rss,$gw_fds,$tr_rss,$tr_fds,$depth,$(metric "$tr_metrics" 'ossbridge_transfer_messages_total{result="deleted"}'),$(metric "$tr_metrics" ossbridge_transfer_failures_total)"
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
csv="bench/results/soak-$stamp.csv"
echo "elapsed_s,gateway_rss_kib,gateway_fds,transfer_rss_kib,transfer_fds,queue_depth,copied,transfer_failures" >"$csv"
$loadgen soak --url "https://127.0.0.1:$gw_port/v1/ingest/soak" --ca "$work/tls/cert.pem" --secret "$secret" \
  --source-endpoint "$src" --bucket source --rate "$RATE" --seconds "$SECONDS_TOTAL" --pool "$POOL" --size "$SIZE" \
  >"$work/load.json" 2>"$work/load.log" &
load_pid=$!
started=$(date +%s)
while kill -0 "$load_pid" 2>/dev/null; do
  sample $(( $(date +%s) - started )) >>"$csv"
  tail -1 "$csv" >&2
  for _ in $(seq "$SAMPLE_SECS"); do kill -0 "$load_pid" 2>/dev/null || break; sleep 1; done
done
wait "$load_pid" || { echo "soak: load generator failed:" >&2; cat "$work/load.log" >&2; exit 1; }
# Drained: every message deleted after a verified copy.
drain_started=$(date +%s)
until [ "$($loadgen depth --endpoint "$aws" --queue-url "$queue")" -eq 0 ]; do
  [ $(( $(date +%s) - drain_started )) -lt 600 ] || { echo "soak: the queue did not drain in 10 minutes" >&2; exit 1; }
  sleep 2
done
sample $(( $(date +%s) - started )) >>"$csv"
drain_seconds=$(( $(date +%s) - drain_started ))
comparison=$($loadgen compare --source-endpoint "$src" --source-bucket source \
  --destination-endpoint "$dst" --destination-bucket destination)

out="bench/results/soak-$stamp.json"
python3 - "$csv" "$out" "$(cat "$work/load.json")" "$comparison" "$drain_seconds" "$RATE" "$SIZE" "$POOL" <<'PY'
import csv, json, platform, subprocess, sys
rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1]))]
out, load, comparison = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
drain, rate, size, pool = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
during = rows[:-1]  # the last row is after the drain
tenth = max(1, len(during) // 10)
first, last = during[1:1 + tenth] or during[:1], during[-tenth:]
mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
cols = ["gateway_rss_kib", "gateway_fds", "transfer_rss_kib", "transfer_fds", "queue_depth"]
summary = {k: {"first_tenth_mean": mean(first, k), "last_tenth_mean": mean(last, k),
               "max": max(r[k] for r in during), "after_drain": rows[-1][k]} for k in cols}
result = {"machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                      "platform": platform.platform()},
          "rate": rate, "object_size": size, "pool": pool, "samples": len(rows),
          "load": load, "drain_seconds": drain, "comparison": comparison, "summary": summary,
          "copied": rows[-1]["copied"], "transfer_failures": rows[-1]["transfer_failures"]}
json.dump(result, open(out, "w"), indent=2)
print(f"{load['events']} events in {load['seconds']:.0f} s ({load['events_per_second']:.1f}/s): "
      f"{load['acknowledged']} acknowledged, {load['failed']} failed, {load['retries']} retries, "
      f"{load['late_ticks']} late ticks; drained {drain} s after the load; copies {rows[-1]['copied']:.0f}, "
      f"transfer failures {rows[-1]['transfer_failures']:.0f}")
print(f"buckets: {comparison['source_objects']} source, {comparison['destination_objects']} destination, "
      f"{comparison['missing']} missing, {comparison['different']} different, {comparison['extra']} extra")
print("| measure | first tenth (mean) | last tenth (mean) | max | after drain |")
print("|---|---|---|---|---|")
for k in cols:
    s = summary[k]
    scale, unit = (1024, " MiB") if k.endswith("kib") else (1, "")
    name = k.replace("_kib", "")
    print(f"| {name} | {s['first_tenth_mean'] / scale:.1f}{unit} | {s['last_tenth_mean'] / scale:.1f}{unit} "
          f"| {s['max'] / scale:.1f}{unit} | {s['after_drain'] / scale:.1f}{unit} |")
print(f"(samples: {sys.argv[1]}; results: {out})")
if comparison["missing"] or comparison["different"] or load["failed"]:
    sys.exit(1)
PY
