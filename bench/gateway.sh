#!/usr/bin/env bash
# Gateway throughput, side by side in one run, twice: against an SQS
# emulator (ministack on 127.0.0.1), then against the benchmark sink
# (`ossbridge-loadgen sqs-sink`, bench/src/sqs_sink.rs), which answers the
# same SQS calls for a few microseconds each, so that the sender, not the
# emulator, is what is measured:
#   ossbridge  signed OSS events (Standard Webhooks) over TLS to
#              ossbridge-gateway, which batches them into SendMessageBatch
#   DTH        the Data Transfer Hub tutorial's Function Compute sender:
#              one SQS SendMessage of {"key","size"} per event
# Both use the same closed-loop load generator (bench/src), the same number
# of requests and the same concurrency. Each run checks that every
# acknowledged event is on its queue, and against the sink (which hashes
# every body) that none is there twice. CPU per event is reported for the
# gateway (/proc) and for the load generator itself; in the DTH rows the
# load generator is the sender, so its figure is the sender's whole cost.
#
#   bench/gateway.sh                       # defaults below
#   REQUESTS=100000 CONCURRENCY=128 bench/gateway.sh
#   PERF=1 bench/gateway.sh                # also profile the gateway (perf)
#   LINGER_MS=20 LINGER_WHEN_IDLE=false bench/gateway.sh   # the gateway's batching
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-50000}
CONCURRENCY=${CONCURRENCY:-64}
EVENTS_PER_REQUEST=${EVENTS_PER_REQUEST:-1}
LINGER_MS=${LINGER_MS:-2}
LINGER_WHEN_IDLE=${LINGER_WHEN_IDLE:-true}

packages=(-p ossbridge-gateway)
. bench/common.sh

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
gateway_credentials
url_path=/v1/ingest/bench
common=(--requests "$REQUESTS" --concurrency "$CONCURRENCY")

# One comparison against the SQS at $1 (label $2): a fresh gateway, then
# the DTH sender, then the SQS's own ceiling; prints one JSON object.
run_against() {
  local endpoint=$1 label=$2 run_id gw_queue warm_queue dth_queue ceiling_queue
  run_id="$label-$(date +%s)"
  gw_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-gateway-$run_id")
  warm_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-warm-$run_id")
  dth_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-dth-$run_id")
  ceiling_queue=$($loadgen queue --endpoint "$endpoint" --name "bench-ceiling-$run_id")
  local gw_port admin_port gw_pid
  gw_port=$(free_port)
  admin_port=$(free_port)
  gateway_toml "$work/gateway-$label.toml" "$gw_port" "$admin_port" "$endpoint" \
    "bench=$gw_queue" "warm=$warm_queue"
  gateway_batching_toml "$work/gateway-$label.toml"
  target/release/ossbridge-gateway --config "$work/gateway-$label.toml" 2>"$work/gateway-$label.log" &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_gateway_ready "$admin_port"
  batches() {
    curl -sf "http://127.0.0.1:$admin_port/metrics" \
      | awk '/^ossbridge_gateway_sqs_batches_total/ {s += $2} END {print s + 0}'
  }
  local url="https://127.0.0.1:$gw_port$url_path" before ticks_before gateway_json calls gw_cpu_seconds
  # Warm-up (connections, TLS sessions, the SQS) is not measured.
  $loadgen gateway --url "${url%/bench}/warm" --ca "$work/tls/cert.pem" --secret "$secret" \
    --requests 2000 --concurrency "$CONCURRENCY" --run-id "warm-$run_id" >/dev/null
  before=$(batches)
  ticks_before=$(cpu_ticks "$gw_pid")
  # PERF=1: the gateway's profile over the measured run, as a perf report
  # in bench/results/ (perf costs the gateway some CPU: not for figures).
  local perf_pid=
  if [ -n "${PERF:-}" ]; then
    perf record -F 499 -g -p "$gw_pid" -o "$work/perf-$label.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  gateway_json=$($loadgen gateway --url "$url" --ca "$work/tls/cert.pem" --secret "$secret" \
    "${common[@]}" --events-per-request "$EVENTS_PER_REQUEST" --run-id "gw-$run_id")
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    mkdir -p bench/results
    local report
    report="bench/results/gateway-perf-$label-$(date -u +%Y%m%dT%H%M%SZ).txt"
    { perf report -i "$work/perf-$label.data" --stdio --no-children --sort dso -g none
      perf report -i "$work/perf-$label.data" --stdio --no-children --percent-limit 0.5 \
        --fields overhead,dso,sym -g none; } 2>/dev/null | grep -v '^#' | grep . >"$report"
  fi
  calls=$(( $(batches) - before ))
  gw_cpu_seconds=$(python3 -c "print(($(cpu_ticks "$gw_pid") - $ticks_before) / $(getconf CLK_TCK))")
  kill -TERM "$gw_pid"
  wait "$gw_pid" || true
  local dth_json ceiling_json gw_depth dth_depth
  dth_json=$($loadgen dth --endpoint "$endpoint" --queue-url "$dth_queue" "${common[@]}" --run-id "dth-$run_id")
  # The SQS's own ceiling: full batches straight from Rust, no gateway.
  ceiling_json=$($loadgen sqs-batch --endpoint "$endpoint" --queue-url "$ceiling_queue" \
    --requests $(( REQUESTS / 10 )) --concurrency 8 --run-id "ceiling-$run_id")
  gw_depth=$($loadgen depth --endpoint "$endpoint" --queue-url "$gw_queue")
  dth_depth=$($loadgen depth --endpoint "$endpoint" --queue-url "$dth_queue")
  echo "{\"label\": \"$label\", \"ossbridge\": $gateway_json, \"dth\": $dth_json, \"ceiling\": $ceiling_json, \"sqs_calls\": $calls, \"gateway_cpu_seconds\": $gw_cpu_seconds, \"gateway_depth\": $gw_depth, \"dth_depth\": $dth_depth, \"queues\": {\"gateway\": \"${gw_queue##*/}\", \"dth\": \"${dth_queue##*/}\"}}"
}

# The emulator first, then the benchmark sink (bench/src/sqs_sink.rs),
# which costs a few microseconds per message.
sqs_port=$(free_port)
BIND_HOST=127.0.0.1 GATEWAY_PORT=$sqs_port "$venv/bin/ministack" >"$work/ministack.log" 2>&1 &
pids+=($!)
ministack="http://127.0.0.1:$sqs_port"
for _ in $(seq 100); do curl -sf "$ministack/_localstack/health" >/dev/null && break; sleep 0.2; done
ministack_json=$(run_against "$ministack" ministack)

start_sink
sink_json=$(run_against "$sink" sink)
sink_stats=$(curl -sf "$sink/stats")

mkdir -p bench/results
out="bench/results/gateway-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$out" "$ministack_json" "$sink_json" "$sink_stats" "$LINGER_MS" "$LINGER_WHEN_IDLE" <<'PY'
import json, platform, subprocess, sys
out = sys.argv[1]
runs = [json.loads(a) for a in sys.argv[2:4]]
sink_stats = json.loads(sys.argv[4])
result = {"machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                      "platform": platform.platform()}, "runs": {},
          "gateway": {"sqs.batch_linger_ms": int(sys.argv[5]),
                      "sqs.batch_linger_when_idle": sys.argv[6] == "true"}}
failed = False
row = "| {:<36} | {:>10,.0f} | {:>8.2f} | {:>8.2f} | {:>10.3f} | {:>9,} | {:>7} | {:>7} |"
us = lambda v: "–" if v is None else f"{v:.0f}"
for run in runs:
    gw, dth, ceiling = run["ossbridge"], run["dth"], run["ceiling"]
    gw_events = gw["ok"] * gw["events_per_request"]
    gw["sqs_calls"], gw["sqs_calls_per_event"], gw["queue_depth"] = run["sqs_calls"], run["sqs_calls"] / gw_events, run["gateway_depth"]
    gw["gateway_cpu_seconds"] = run["gateway_cpu_seconds"]
    gw["gateway_cpu_us_per_event"] = run["gateway_cpu_seconds"] * 1e6 / gw_events
    dth["sqs_calls"], dth["sqs_calls_per_event"], dth["queue_depth"] = dth["ok"], 1.0, run["dth_depth"]
    entry = {"ossbridge": gw, "dth": dth, "ceiling": ceiling,
             "ratio_events_per_second": gw["events_per_second"] / dth["events_per_second"]}
    # Every event once: the queue holds exactly what was acknowledged, and
    # (the sink hashes every body) nothing twice.
    if run["label"] == "sink":
        queues = sink_stats["queues"]
        entry["duplicates"] = {k: queues[run["queues"][k]]["duplicates"] for k in ("gateway", "dth")}
        failed |= any(entry["duplicates"].values())
    for name, r, depth in (("ossbridge", gw, gw["queue_depth"]), ("dth", dth, dth["queue_depth"])):
        expected = r["ok"] * r.get("events_per_request", 1)
        if depth != expected:
            print(f"{run['label']}: {name} queue holds {depth}, expected {expected}")
            failed = True
    result["runs"][run["label"]] = entry
    print(f"\nagainst {run['label']}:")
    # CPU µs per event: the gateway's (from /proc), and the load
    # generator's own; for the DTH row the load generator is the sender.
    print("| sender                               |   events/s |  p50 ms  |  p99 ms  | SQS calls/event | on queue | gateway CPU µs/event | load generator CPU µs/event |")
    print("|---|---|---|---|---|---|---|---|")
    print(row.format("ossbridge-gateway (TLS, batched)", gw["events_per_second"], gw["p50_ms"], gw["p99_ms"], gw["sqs_calls_per_event"], gw["queue_depth"], us(gw["gateway_cpu_us_per_event"]), us(gw.get("cpu_us_per_event"))))
    print(row.format("DTH: SendMessage per event", dth["events_per_second"], dth["p50_ms"], dth["p99_ms"], 1.0, dth["queue_depth"], "", us(dth.get("cpu_us_per_event"))))
    print(row.format("(SQS ceiling: direct batches)", ceiling["events_per_second"], ceiling["p50_ms"], ceiling["p99_ms"], 0.1, ceiling["ok"] * 10, "", us(ceiling.get("cpu_us_per_event"))))
    print(f"ossbridge / DTH events/s: {entry['ratio_events_per_second']:.2f}x; "
          f"gateway CPU {gw['gateway_cpu_us_per_event']:.0f} us/event")
    if gw["failed"] or dth["failed"]:
        print(f"failed requests: ossbridge {gw['failed']}, DTH {dth['failed']}")
        failed = True
json.dump(result, open(out, "w"), indent=2)
print(f"\nresults: {out}")
sys.exit(1 if failed else 0)
PY
