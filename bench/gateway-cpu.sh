#!/usr/bin/env bash
# The gateway's CPU per event, before and after a change: two gateway
# binaries take turns against the benchmark sink (bench/src/sqs_sink.rs)
# under the same closed-loop load, ROUNDS times each, and the script
# reports each binary's CPU microseconds per event (from /proc, user +
# system), events/s and p99.
#
# Why turns: on a shared 2-core VM the CPU a run costs drifts by ±20 %
# over minutes (other tenants, the load generator on the same cores).
# Alternating the two binaries puts the same drift on both, and the
# median of the rounds is what docs/benchmarks.md reports.
#
# Each round also measures two floors under the same load, so the
# gateway's figure can be split into what its parts cost and what
# ossbridge's own work costs:
# - `floor`: `ossbridge-floor` (bench/src/floor.rs), the gateway's server
#   stack (tokio, rustls, hyper, axum, mimalloc) reading each body and
#   answering, nothing else;
# - `sqs-client`: the AWS SDK sending SendMessageBatch calls of 10
#   gateway-sized messages straight to the sink; its CPU per message is
#   the SQS client's share of each event.
#
#   git worktree add /tmp/before <revision>
#   (cd /tmp/before && cargo build --release --locked -p ossbridge-gateway)
#   bench/gateway-cpu.sh /tmp/before/target/release/ossbridge-gateway target/release/ossbridge-gateway
#   ROUNDS=7 REQUESTS=100000 bench/gateway-cpu.sh BEFORE AFTER
set -euo pipefail
cd "$(dirname "$0")/.."
before_bin=${1:?usage: bench/gateway-cpu.sh BEFORE_GATEWAY_BINARY AFTER_GATEWAY_BINARY}
after_bin=${2:?usage: bench/gateway-cpu.sh BEFORE_GATEWAY_BINARY AFTER_GATEWAY_BINARY}
ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-50000}
CONCURRENCY=${CONCURRENCY:-64}

packages=(-p ossbridge-gateway)
floor_bin=target/release/ossbridge-floor
. bench/common.sh

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
gateway_credentials
start_sink

# Drives the server $1 (pid) at URL $2 with the same closed-loop load,
# warm-up first (connections, TLS sessions, allocator; not measured),
# stops it and prints one JSON object labelled $3.
drive() {
  local pid=$1 url=$2 label=$3 ticks json
  $loadgen gateway --url "$url" --ca "$work/tls/cert.pem" --secret "$secret" \
    --requests 3000 --concurrency "$CONCURRENCY" --run-id "warm-$label-$RANDOM" >/dev/null
  ticks=$(cpu_ticks "$pid")
  json=$($loadgen gateway --url "$url" --ca "$work/tls/cert.pem" --secret "$secret" \
    --requests "$REQUESTS" --concurrency "$CONCURRENCY" --run-id "run-$label-$RANDOM")
  ticks=$(( $(cpu_ticks "$pid") - ticks ))
  kill -TERM "$pid"
  wait "$pid" || true
  echo "{\"label\": \"$label\", \"cpu_seconds\": $(python3 -c "print($ticks / $(getconf CLK_TCK))"), \"load\": $json}"
}

# One measured run of gateway binary $1 (label $2).
measure() {
  local bin=$1 label=$2 queue gw_port admin_port
  queue=$($loadgen queue --endpoint "$sink" --name "cpu-$label-$RANDOM$RANDOM")
  gw_port=$(free_port)
  admin_port=$(free_port)
  gateway_toml "$work/gateway.toml" "$gw_port" "$admin_port" "$sink" "bench=$queue"
  "$bin" --config "$work/gateway.toml" 2>"$work/gateway-$label.log" &
  pids+=($!)
  wait_gateway_ready "$admin_port"
  drive "$!" "https://127.0.0.1:$gw_port/v1/ingest/bench" "$label"
}

# The floor server under the same load.
measure_floor() {
  $floor_bin "$work/tls/cert.pem" "$work/tls/key.pem" >"$work/floor.out" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/floor.out" ] && break; sleep 0.05; done
  drive "$!" "$(head -1 "$work/floor.out")/v1/ingest/bench" floor
}

# The SQS client alone: batches of 10 gateway-sized (380-byte) messages
# straight to the sink, as many messages as the gateway sends; the load
# generator's own CPU is the client's.
measure_sqs_client() {
  local queue json
  queue=$($loadgen queue --endpoint "$sink" --name "cpu-client-$RANDOM$RANDOM")
  json=$($loadgen sqs-batch --endpoint "$sink" --queue-url "$queue" --body-bytes 380 \
    --requests $(( REQUESTS / 10 )) --concurrency 8 --run-id "client-$RANDOM")
  echo "{\"label\": \"sqs-client\", \"cpu_seconds\": $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['cpu_seconds'])" "$json"), \"load\": $json}"
}

runs=()
for round in $(seq "$ROUNDS"); do
  runs+=("$(measure "$before_bin" before)")
  runs+=("$(measure "$after_bin" after)")
  runs+=("$(measure_floor)")
  runs+=("$(measure_sqs_client)")
  echo "round $round of $ROUNDS done" >&2
done

mkdir -p bench/results
out="bench/results/gateway-cpu-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$out" "$before_bin" "$after_bin" "${runs[@]}" <<'PY'
import json, platform, statistics, subprocess, sys
out, before_bin, after_bin, runs = sys.argv[1], sys.argv[2], sys.argv[3], [json.loads(a) for a in sys.argv[4:]]
result = {"machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                      "platform": platform.platform()},
          "binaries": {"before": before_bin, "after": after_bin}, "runs": runs, "summary": {}}
failed = False
print("| process | CPU µs/event (median) | min | max | events/s (median) | p99 ms (median) |")
print("|---|---|---|---|---|---|")
for label in ("before", "after", "floor", "sqs-client"):
    mine = [r for r in runs if r["label"] == label]
    us = [r["cpu_seconds"] * 1e6 / (r["load"]["ok"] * r["load"]["events_per_request"]) for r in mine]
    eps = [r["load"]["events_per_second"] for r in mine]
    p99 = [r["load"]["p99_ms"] for r in mine]
    failed |= any(r["load"]["failed"] for r in mine)
    result["summary"][label] = {"cpu_us_per_event": us, "median_cpu_us_per_event": statistics.median(us),
                                "median_events_per_second": statistics.median(eps),
                                "median_p99_ms": statistics.median(p99)}
    print(f"| {label} | {statistics.median(us):.1f} | {min(us):.1f} | {max(us):.1f} | "
          f"{statistics.median(eps):,.0f} | {statistics.median(p99):.2f} |")
ratio = result["summary"]["after"]["median_cpu_us_per_event"] / result["summary"]["before"]["median_cpu_us_per_event"]
result["summary"]["after_over_before_cpu"] = ratio
print(f"after / before CPU per event: {ratio:.2f}")
# Per round, so the drift cancels: what is left of the gateway's CPU per
# event once its server stack and its SQS client are taken out.
own = [a["cpu_seconds"] * 1e6 / a["load"]["ok"] - f["cpu_seconds"] * 1e6 / f["load"]["ok"]
       - c["cpu_seconds"] * 1e6 / (c["load"]["ok"] * c["load"]["events_per_request"])
       for a, f, c in zip(*([r for r in runs if r["label"] == l] for l in ("after", "floor", "sqs-client")))]
result["summary"]["after_minus_floors_cpu_us_per_event"] = own
print(f"after − floor − sqs-client, per round (ossbridge's own work): "
      + ", ".join(f"{x:.1f}" for x in own) + f" µs/event (median {statistics.median(own):.1f})")
json.dump(result, open(out, "w"), indent=2)
print(f"results: {out}")
sys.exit(1 if failed else 0)
PY
