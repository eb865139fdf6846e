#!/usr/bin/env bash
# Gateway throughput, side by side in one run against the same SQS emulator
# (ministack on 127.0.0.1):
#   ossbridge  signed OSS events (Standard Webhooks) over TLS to
#              ossbridge-gateway, which batches them into SendMessageBatch
#   DTH        the Data Transfer Hub tutorial's Function Compute sender:
#              one SQS SendMessage of {"key","size"} per event
# Both use the same closed-loop load generator (bench/src), the same number
# of requests and the same concurrency.
#
#   bench/gateway.sh                       # defaults below
#   REQUESTS=100000 CONCURRENCY=128 bench/gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-50000}
CONCURRENCY=${CONCURRENCY:-64}
EVENTS_PER_REQUEST=${EVENTS_PER_REQUEST:-1}

packages=(-p ossbridge-gateway)
. bench/common.sh

sqs_port=$(free_port)
BIND_HOST=127.0.0.1 GATEWAY_PORT=$sqs_port "$venv/bin/ministack" >"$work/ministack.log" 2>&1 &
pids+=($!)
endpoint="http://127.0.0.1:$sqs_port"
for _ in $(seq 100); do curl -sf "$endpoint/_localstack/health" >/dev/null && break; sleep 0.2; done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
run_id=$(date +%s)
gw_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-gateway-$run_id")
warm_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-warm-$run_id")
dth_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-dth-$run_id")
ceiling_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-ceiling-$run_id")
$loadgen cert "$work/tls"

secret="whsec_$(head -c 24 /dev/urandom | base64)"
gw_port=$(free_port)
admin_port=$(free_port)
cat >"$work/gateway.toml" <<TOML
listen = "127.0.0.1:$gw_port"
admin_listen = "127.0.0.1:$admin_port"
[log]
format = "json"
level = "warn"
[aws]
region = "us-east-1"
endpoint_url = "$endpoint"
[tls]
cert_file = "$work/tls/cert.pem"
key_file = "$work/tls/key.pem"
[rate_limit]
global_per_second = 0
[sources.bench]
queue_url = "$gw_queue"
[sources.bench.verifier]
type = "standard_webhooks"
secrets = ["$secret"]
[sources.warm]
queue_url = "$warm_queue"
[sources.warm.verifier]
type = "standard_webhooks"
secrets = ["$secret"]
TOML
target/release/ossbridge-gateway --config "$work/gateway.toml" 2>"$work/gateway.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin_port/readyz" >/dev/null && break; sleep 0.2; done

batches() {
  curl -sf "http://127.0.0.1:$admin_port/metrics" \
    | awk '/^ossbridge_gateway_sqs_batches_total/ {s += $2} END {print s + 0}'
}
url="https://127.0.0.1:$gw_port/v1/ingest/bench"
common=(--requests "$REQUESTS" --concurrency "$CONCURRENCY")

# Warm-up (connections, TLS sessions, emulator) is not measured.
$loadgen gateway --url "${url%/bench}/warm" --ca "$work/tls/cert.pem" --secret "$secret" \
  --requests 2000 --concurrency "$CONCURRENCY" --run-id "warm-$run_id" >/dev/null
before=$(batches)
gw_pid=${pids[1]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$gw_pid/stat"; }
ticks_before=$(cpu_ticks)
gateway_json=$($loadgen gateway --url "$url" --ca "$work/tls/cert.pem" --secret "$secret" \
  "${common[@]}" --events-per-request "$EVENTS_PER_REQUEST" --run-id "gw-$run_id")
calls=$(( $(batches) - before ))
gw_cpu_seconds=$(python3 -c "print(($(cpu_ticks) - $ticks_before) / $(getconf CLK_TCK))")
dth_json=$($loadgen dth --endpoint "$endpoint" --queue-url "$dth_queue" "${common[@]}" --run-id "dth-$run_id")
# The emulator's own ceiling: full batches straight from Rust, no gateway.
ceiling_json=$($loadgen sqs-batch --endpoint "$endpoint" --queue-url "$ceiling_queue" \
  --requests $(( REQUESTS / 10 )) --concurrency 8 --run-id "ceiling-$run_id")

gw_depth=$($loadgen depth --endpoint "$endpoint" --queue-url "$gw_queue")
dth_depth=$($loadgen depth --endpoint "$endpoint" --queue-url "$dth_queue")

mkdir -p bench/results
out="bench/results/gateway-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$gateway_json" "$dth_json" "$calls" "$gw_depth" "$dth_depth" "$out" "$ceiling_json" "$gw_cpu_seconds" <<'PY'
import json, platform, subprocess, sys
gw, dth = json.loads(sys.argv[1]), json.loads(sys.argv[2])
calls, gw_depth, dth_depth, out = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ceiling, gw_cpu = json.loads(sys.argv[7]), float(sys.argv[8])
gw_events = gw["ok"] * gw["events_per_request"]
gw["sqs_calls"], gw["sqs_calls_per_event"], gw["queue_depth"] = calls, calls / gw_events, gw_depth
gw["gateway_cpu_seconds"], gw["gateway_cpu_us_per_event"] = gw_cpu, gw_cpu * 1e6 / gw_events
dth["sqs_calls"], dth["sqs_calls_per_event"], dth["queue_depth"] = dth["ok"], 1.0, dth_depth
result = {"machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                      "platform": platform.platform()},
          "ossbridge": gw, "dth": dth, "emulator_ceiling": ceiling,
          "ratio_events_per_second": gw["events_per_second"] / dth["events_per_second"]}
json.dump(result, open(out, "w"), indent=2)
row = "| {:<34} | {:>10,.0f} | {:>8.2f} | {:>8.2f} | {:>10.3f} | {:>9,} |"
print("| sender                             |   events/s |  p50 ms  |  p99 ms  | SQS calls/event | on queue |")
print("|---|---|---|---|---|---|")
print(row.format("ossbridge-gateway (TLS, batched)", gw["events_per_second"], gw["p50_ms"], gw["p99_ms"], gw["sqs_calls_per_event"], gw_depth))
print(row.format("DTH: SendMessage per event", dth["events_per_second"], dth["p50_ms"], dth["p99_ms"], 1.0, dth_depth))
print(row.format("(emulator ceiling: direct batches)", ceiling["events_per_second"], ceiling["p50_ms"], ceiling["p99_ms"], 0.1, ceiling["ok"] * 10))
print(f"\nossbridge / DTH events/s: {result['ratio_events_per_second']:.2f}x; "
      f"gateway CPU {gw['gateway_cpu_us_per_event']:.0f} us/event   (results: {out})")
if gw["failed"] or dth["failed"]:
    print(f"failed requests: ossbridge {gw['failed']}, DTH {dth['failed']}")
PY
