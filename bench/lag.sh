#!/usr/bin/env bash
# Replication lag under load: how long after an object is written at the
# source it is visible at the destination, at steady event rates, and the
# highest rate the whole pipeline sustains on this machine. Signed OSS
# events go over TLS to ossbridge-gateway, which batches them into SQS;
# ossbridge-transfer drains the queue and copies each object from the
# source S3 emulator (standing in for OSS) to the destination one. Three
# ministack processes on 127.0.0.1: source, destination, and SQS + SSM. The
# destination sits behind the test kit's S3 proxy (`ossbridge-loadgen
# proxy --journal`), which notes when the store answered each PutObject.
#
# Each stage, `ossbridge-loadgen lag` (bench/src/lag.rs) writes a NEW
# SIZE-byte object `lag/STAGE/SEQ` to the source, open-loop at RATE/s, then
# POSTs its signed event whose eventTime is when the source answered the
# write. Two lags per event:
#   outside    journal time (the destination store's 2xx to the transfer's
#              PutObject, at the proxy) - the source write's answer, in ns;
#   histogram  ossbridge_transfer_replication_lag_seconds: eventTime (ms,
#              truncated) -> the transfer's job done; scraped before and
#              after the stage, bucket deltas, quantiles interpolated
#              linearly inside buckets (bounds 0.05, 0.1, 0.25, 0.5, 1 s, ...).
# The queue depth is read every second while sending; past
# MAX_BACKLOG_SECS worth of events (at least 200) the sending stops: the
# stage has failed, and ministack's ReceiveMessage scans the whole queue,
# so a large backlog would slow the drain itself. After the sending the
# script waits (up to DRAIN_TIMEOUT s) until every acknowledged event's
# object is in the journal, then starts the next stage.
#
# A stage SUSTAINS its rate when all of: every event acknowledged by the
# gateway and copied; the backlog never passed its bound; the generator
# kept its schedule (>= 99 % of the stage's events sent, and late ticks,
# i.e. ticks started > 50 ms late or waiting for one of 256 in-flight
# slots, <= 1 % of them); lag did not grow (median outside lag of the
# events written in the last quarter of the stage < that of the first
# quarter + 0.5 s); and the queue kept up (depth at the end of the
# sending <= one second of events). After RATES, up to SEARCH_STEPS
# stages of SEARCH_SECS bisect (to 10/s) between the highest sustained
# and the lowest unsustained rate (doubling while none failed).
#
# Transfer settings: the defaults (worker.concurrency 16, receivers 2,
# wait_time_secs 20, visibility 300 s), small-object path; CONCURRENCY
# overrides the first. Gateway: the defaults; LINGER_MS sets its
# sqs.batch_linger_ms (2 ms by default), which trades lag for SQS calls
# per event, and LINGER_WHEN_IDLE=false its sqs.batch_linger_when_idle
# (wait only while a call is in flight). SQS_LATENCY_MS puts the test
# kit's SQS proxy, adding that much to every call, between the gateway
# and the emulator (which answers in about a millisecond, real SQS in
# several). CPU seconds per process come from /proc/PID/stat.
# Results: bench/results/lag-*.json and a markdown table. Target: p99
# outside lag <= 1 s at 200 events/s.
#
#   bench/lag.sh                           # 50, 200, 1000/s, 60 s each, then 4 x 30 s of search
#   RATES="20" STAGE_SECS=5 SEARCH_STEPS=0 bench/lag.sh    # rates are integers
#   LINGER_MS=20 RATES="50 200" SEARCH_STEPS=0 bench/lag.sh
#   LINGER_MS=20 LINGER_WHEN_IDLE=false RATES="50 200" SEARCH_STEPS=0 bench/lag.sh
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
RATES=${RATES:-50 200 1000}
STAGE_SECS=${STAGE_SECS:-60}
SEARCH_STEPS=${SEARCH_STEPS:-4}
SEARCH_SECS=${SEARCH_SECS:-30}
SIZE=${SIZE:-16384}
CONCURRENCY=${CONCURRENCY:-16}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-240}
MAX_BACKLOG_SECS=${MAX_BACKLOG_SECS:-5}
LINGER_MS=${LINGER_MS:-}
LINGER_WHEN_IDLE=${LINGER_WHEN_IDLE:-true}
SQS_LATENCY_MS=${SQS_LATENCY_MS:-0}

packages=(-p ossbridge-gateway -p ossbridge-transfer)
. bench/common.sh

start_emulator source
src=$endpoint src_pid=$emulator_pid
start_emulator destination
dst=$endpoint dst_pid=$emulator_pid
start_emulator aws
aws=$endpoint aws_pid=$emulator_pid

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
queue=$($loadgen queue --endpoint "$aws" --name "lag-$(date +%s)")
$loadgen bucket --endpoint "$src" --name source
$loadgen bucket --endpoint "$dst" --name destination
$loadgen keys --endpoint "$aws" --name /lag/oss-keys
gateway_credentials

journal=$work/journal.tsv
$loadgen proxy --upstream "$dst" --journal "$journal" >"$work/proxy.out" 2>"$work/proxy.log" &
proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 100); do [ -s "$work/proxy.out" ] && break; sleep 0.05; done
proxy_url=$(head -1 "$work/proxy.out")

gw_port=$(free_port) gw_admin=$(free_port) tr_metrics=$(free_port)
gw_sqs=$aws
if [ "$SQS_LATENCY_MS" != 0 ]; then
  $loadgen sqs-proxy --upstream "$aws" --latency-ms "$SQS_LATENCY_MS" >"$work/sqs-proxy.out" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/sqs-proxy.out" ] && break; sleep 0.05; done
  gw_sqs=$(head -1 "$work/sqs-proxy.out")
fi
gateway_toml "$work/gateway.toml" "$gw_port" "$gw_admin" "$gw_sqs" "lag=$queue"
gateway_batching_toml "$work/gateway.toml"
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
credentials_parameter = "/lag/oss-keys"
force_path_style = true
[destination]
bucket = "destination"
endpoint_url = "$proxy_url"
force_path_style = true
[worker]
concurrency = $CONCURRENCY
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
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$tr_metrics/metrics" >/dev/null && break; sleep 0.2; done

metric() { # name [port] -> value summed over matching series (the transfer's by default)
  { curl -sf "http://127.0.0.1:${2:-$tr_metrics}/metrics" || true; } | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'
}
cpu_snapshot() { # file: "process ticks" per line (utime + stime), then the machine's busy ticks
  local name pid fields
  for name in gateway transfer source destination aws proxy; do
    case $name in
      gateway) pid=$gw_pid ;; transfer) pid=$tr_pid ;; source) pid=$src_pid ;;
      destination) pid=$dst_pid ;; aws) pid=$aws_pid ;; proxy) pid=$proxy_pid ;;
    esac
    kill -0 "$pid" 2>/dev/null || { echo "lag: $name (pid $pid) died" >&2; exit 1; }
    read -r -a fields < <(sed 's/.*) //' "/proc/$pid/stat")
    echo "$name $(( fields[11] + fields[12] ))"
  done >"$1"
  awk '$1 == "cpu" {print "machine", $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat >>"$1"
  echo "wall $(date +%s%N)" >>"$1"
}
copied() { # stage -> distinct keys of the stage in the journal
  awk -F'\t' -v p="destination/lag/$1/" 'index($1, p) == 1 && !seen[$1]++ {n++} END {print n + 0}' "$journal"
}

# run_stage NAME RATE SECONDS: prints the stage's JSON (analysis below).
run_stage() {
  local name=$1 rate=$2 secs=$3 s=$work/stage-$1 acked started hist_before depth complete=true load_pid backlog_bound stopped_at batches_before batches
  curl -sf "http://127.0.0.1:$tr_metrics/metrics" >"$s.metrics-before"
  hist_before=$(metric ossbridge_transfer_replication_lag_seconds_count)
  batches_before=$(metric ossbridge_gateway_sqs_batches_total "$gw_admin")
  cpu_snapshot "$s.cpu-start"
  echo "lag: stage $name, $rate events/s for $secs s" >&2
  $loadgen lag --url "https://127.0.0.1:$gw_port/v1/ingest/lag" --ca "$work/tls/cert.pem" --secret "$secret" \
    --source-endpoint "$src" --bucket source --stage "$name" --rate "$rate" --seconds "$secs" --size "$SIZE" \
    --events "$s.events" >"$s.load.json" 2>"$s.load.log" &
  load_pid=$!
  # A backlog past its bound stops the sending: the stage has failed, and
  # the emulator's SQS slows down as its queue grows (see the header).
  backlog_bound=$(( rate * MAX_BACKLOG_SECS > 200 ? rate * MAX_BACKLOG_SECS : 200 )) stopped_at=0
  while kill -0 "$load_pid" 2>/dev/null; do
    sleep 1
    depth=$($loadgen depth --endpoint "$aws" --queue-url "$queue")
    if [ "$stopped_at" -eq 0 ] && [ "$depth" -gt "$backlog_bound" ]; then
      echo "lag: stage $name: queue depth $depth > $backlog_bound, stopping the sending" >&2
      stopped_at=$depth
      kill -TERM "$load_pid" 2>/dev/null || true
    fi
  done
  wait "$load_pid" || { echo "lag: load generator failed:" >&2; cat "$s.load.log" >&2; exit 1; }
  depth=$($loadgen depth --endpoint "$aws" --queue-url "$queue")
  cpu_snapshot "$s.cpu-sent"
  batches=$(( $(metric ossbridge_gateway_sqs_batches_total "$gw_admin") - batches_before ))
  acked=$(jq .acknowledged "$s.load.json")
  started=$(date +%s)
  until [ "$(copied "$name")" -ge "$acked" ] \
    && [ "$(metric ossbridge_transfer_replication_lag_seconds_count)" -ge $(( hist_before + acked )) ]; do
    kill -0 "$tr_pid" 2>/dev/null || { echo "lag: ossbridge-transfer died:" >&2; tail "$work/transfer.log" >&2; exit 1; }
    if [ $(( $(date +%s) - started )) -ge "$DRAIN_TIMEOUT" ]; then
      echo "lag: stage $name: $(copied "$name") of $acked copied after $DRAIN_TIMEOUT s" >&2
      complete=false
      break
    fi
    sleep 0.5
  done
  sleep 0.3 # the journal is flushed every 100 ms
  curl -sf "http://127.0.0.1:$tr_metrics/metrics" >"$s.metrics-after"
  cpu_snapshot "$s.cpu-drained"
  python3 - "$s" "$name" "$rate" "$secs" "$depth" "$complete" "$(( $(date +%s) - started ))" "$journal" \
    "$backlog_bound" "$stopped_at" "$batches" <<'PY'
import json, math, sys
s, name, rate, secs, depth, drained, drain_s, journal, bound, stopped_at, batches = sys.argv[1:]
rate, secs, depth, bound, stopped_at = float(rate), float(secs), int(depth), int(bound), int(stopped_at)
load = json.load(open(f"{s}.load.json"))
seen = {}
for line in open(journal):
    key, at = line.rstrip("\n").split("\t")
    seen.setdefault(key, int(at))
events = [l.rstrip("\n").split("\t") for l in open(f"{s}.events")]
lags, missing = [], 0  # (written ns, lag s)
for key, written, acked, _ in events:
    if acked != "1":
        continue
    at = seen.get(f"destination/{key}")
    if at is None:
        missing += 1
    else:
        lags.append((int(written), (at - int(written)) / 1e9))
lags.sort()
def q(xs, p):  # nearest rank
    return xs[min(len(xs), max(1, math.ceil(p * len(xs)))) - 1] if xs else None
values = sorted(l for _, l in lags)
quarter = max(1, len(lags) // 4)
first = sorted(l for _, l in lags[:quarter])
last = sorted(l for _, l in lags[-quarter:])
growth = (q(last, 0.5) - q(first, 0.5)) if lags else None
def buckets(path):
    out = {}
    for line in open(path):
        if line.startswith("ossbridge_transfer_replication_lag_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
    return out
before, after = buckets(f"{s}.metrics-before"), buckets(f"{s}.metrics-after")
delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
total = delta[-1][1] if delta else 0.0
def hq(p):  # Prometheus histogram_quantile: linear inside the bucket
    if not total:
        return None, None
    rank, lower, below = p * total, 0.0, 0.0
    for le, count in delta:
        if count >= rank:
            if le == float("inf"):
                return lower, [lower, None]
            return lower + (le - lower) * ((rank - below) / (count - below) if count > below else 1.0), [lower, le]
        lower, below = le, count
    return lower, [lower, None]
(p50, p50_bucket), (p99, p99_bucket) = hq(0.5), hq(0.99)
within_1s = next((c for le, c in delta if le == 1.0), 0.0) / total if total else None
def cpu(path):  # seconds; "wall" is the snapshot's time
    return {k: int(v) / (1e9 if k == "wall" else 100.0) for k, v in (l.split() for l in open(path))}
c0, c1, c2 = cpu(f"{s}.cpu-start"), cpu(f"{s}.cpu-sent"), cpu(f"{s}.cpu-drained")
procs = [k for k in c0 if k not in ("machine", "wall")]
cpu_stage = {k: round(c2[k] - c0[k], 2) for k in procs}
cpu_stage["loadgen"] = load.get("cpu_seconds")
# Cores busy from the start to the end of the sending (the generator's
# whole life), per process; "all" is ours, "others" what the rest of the
# machine used meanwhile (from /proc/stat).
window = c1["wall"] - c0["wall"]
busy = {k: round((c1[k] - c0[k]) / window, 2) for k in procs}
busy["loadgen"] = round((load.get("cpu_seconds") or 0) / window, 2)
busy["all"] = round(sum(busy.values()), 2)
busy["others"] = round((c1["machine"] - c0["machine"]) / window - busy["all"], 2)
checks = {
    "all_acknowledged_and_copied": load["failed"] == 0 and missing == 0 and drained == "true",
    "backlog_bounded": stopped_at == 0,
    # A stop for the backlog ends the schedule early; it is not the generator's.
    "generator_on_schedule": load["late_ticks"] <= 0.01 * max(1, load["events"])
                             and load["events"] >= 0.99 * rate * min(secs, load["sending_seconds"]) - 1,
    "lag_not_growing": growth is not None and growth < 0.5,
    "queue_kept_up": depth <= rate,
}
print(json.dumps({
    "stage": name, "rate": rate, "seconds": secs, "load": load,
    "outside_lag_s": {"n": len(values), "missing": missing, "p50": q(values, 0.5), "p99": q(values, 0.99),
                      "max": values[-1] if values else None,
                      "first_quarter_p50": q(first, 0.5), "last_quarter_p50": q(last, 0.5), "growth": growth},
    "histogram_lag_s": {"n": total, "p50": p50, "p99": p99, "p50_bucket": p50_bucket, "p99_bucket": p99_bucket,
                        "share_within_1s": within_1s,
                        "buckets": {str(le): c for le, c in delta}},
    "queue_depth_end_of_sending": depth, "backlog_bound": bound, "sending_stopped_at_depth": stopped_at or None,
    "drain_seconds": int(drain_s), "drained": drained == "true",
    "cpu_seconds": cpu_stage, "cores_busy_while_sending": busy,
    "gateway_sqs_calls_per_event": int(batches) / max(1, load["acknowledged"]),
    "checks": checks, "sustained": all(checks.values()),
}))
PY
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
stages=$work/stages.jsonl
: >"$stages"
# Runs a stage and records it; sets $drained: a stage that did not drain
# ends the run, as every later stage would start with a backlog.
stage() {
  local out
  out=$(run_stage "$@")
  echo "$out" >>"$stages"
  jq -r '"lag: \(.stage): \(.load.events) sent, \(.load.acknowledged) acked, \(.load.late_ticks) late; outside p50 \(.outside_lag_s.p50) p99 \(.outside_lag_s.p99) s; sustained \(.sustained) \(.checks)"' <<<"$out" >&2
  drained=$(jq .drained <<<"$out")
}
drained=true
for rate in $RATES; do
  stage "r$rate" "$rate" "$STAGE_SECS"
  [ "$drained" = true ] || break
done
# The search: lo sustained, hi not (0 = none yet).
if [ "$drained" = true ] && [ "$SEARCH_STEPS" -gt 0 ]; then
  read -r lo hi < <(jq -rs '(map(select(.sustained) | .rate) | max // 0) as $lo
      | [$lo, (map(select((.sustained | not) and .rate > $lo) | .rate) | min // 0)] | map(floor) | @tsv' "$stages")
  for step in $(seq "$SEARCH_STEPS"); do
    if [ "$hi" -eq 0 ]; then next=$(( lo * 2 ))
    elif [ $(( hi - lo )) -le $(( lo / 10 > 10 ? lo / 10 : 10 )) ]; then break
    else next=$(( (lo + hi) / 2 )); next=$(( next - next % 10 )); [ "$next" -gt "$lo" ] || next=$(( lo + 10 ))
    fi
    stage "search$step-r$next" "$next" "$SEARCH_SECS"
    [ "$drained" = true ] || break
    if [ "$(tail -1 "$stages" | jq .sustained)" = true ]; then lo=$next; else hi=$next; fi
  done
fi

mkdir -p bench/results
out="bench/results/lag-$stamp.json"
python3 - "$stages" "$out" "$SIZE" "$CONCURRENCY" "$STAGE_SECS" "$SEARCH_SECS" "${LINGER_MS:-2}" "$LINGER_WHEN_IDLE" "$SQS_LATENCY_MS" <<'PY'
import json, platform, subprocess, sys
stages = [json.loads(l) for l in open(sys.argv[1])]
out, size, concurrency = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sustained = [s["rate"] for s in stages if s["sustained"]]
best = max(sustained) if sustained else None
failed = sorted((s for s in stages if not s["sustained"]), key=lambda s: s["rate"])
above = [s for s in failed if best is None or s["rate"] > best]
limit = above[0] if above else None
at200 = next((s for s in stages if s["rate"] == 200 and s["stage"] == "r200"), None)
target = None if at200 is None else at200["outside_lag_s"]["p99"] is not None and at200["outside_lag_s"]["p99"] <= 1.0
result = {"machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                      "platform": platform.platform()},
          "object_size": size, "transfer": {"worker.concurrency": concurrency, "receivers": 2, "wait_time_secs": 20},
          "gateway": {"sqs.batch_linger_ms": int(sys.argv[7]),
                      "sqs.batch_linger_when_idle": sys.argv[8] == "true",
                      "added_sqs_latency_ms": int(sys.argv[9])},
          "stage_seconds": int(sys.argv[5]), "search_seconds": int(sys.argv[6]),
          "highest_sustained_rate": best,
          "lowest_unsustained_rate": limit and limit["rate"],
          "at_lowest_unsustained": limit and {"checks": limit["checks"], "cores_busy_while_sending": limit["cores_busy_while_sending"]},
          "target_p99_le_1s_at_200": target, "stages": stages}
json.dump(result, open(out, "w"), indent=2)
f = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"
print("| stage | rate/s | sent / acked | late ticks | outside p50 / p99 / max (s) | histogram p50 / p99 (s), ≤ 1 s | lag growth (s) | depth at end | sustained |")
print("|---|---:|---:|---:|---|---|---:|---:|---|")
for s in stages:
    o, h, l = s["outside_lag_s"], s["histogram_lag_s"], s["load"]
    share = "–" if h["share_within_1s"] is None else f"{100 * h['share_within_1s']:.1f} %"
    hb = lambda v, b: "–" if v is None else f"{v:.2f} [{b[0]:g}–{'∞' if b[1] is None else f'{b[1]:g}'}]"
    why = ", ".join(k for k, ok in s["checks"].items() if not ok)
    print(f"| {s['stage']} | {s['rate']:.0f} ({l['events_per_second']:.0f}) | {l['events']} / {l['acknowledged']} | {l['late_ticks']} "
          f"| {f(o['p50'], 3)} / {f(o['p99'], 3)} / {f(o['max'], 3)} | {hb(h['p50'], h['p50_bucket'])} / {hb(h['p99'], h['p99_bucket'])}, {share} "
          f"| {f(o['growth'])} | {s['queue_depth_end_of_sending']} | {'yes' if s['sustained'] else 'no: ' + why} |")
procs = ["gateway", "transfer", "source", "destination", "aws", "proxy", "loadgen"]
print()
print("| stage | CPU s: " + " | ".join(procs) + " | cores busy while sending (top 2, all ours, others) | gateway SQS calls / event |")
print("|---|" + "---:|" * len(procs) + "---|---:|")
for s in stages:
    busy = s["cores_busy_while_sending"]
    top = sorted(((k, v) for k, v in busy.items() if k not in ("all", "others")), key=lambda kv: -kv[1])[:2]
    top += [("all", busy["all"]), ("others", busy["others"])]
    print(f"| {s['stage']} | " + " | ".join(f(s["cpu_seconds"].get(p), 1) for p in procs)
          + " | " + ", ".join(f"{k} {v:.2f}" for k, v in top) + f" | {s['gateway_sqs_calls_per_event']:.2f} |")
print()
print(f"highest sustained rate: {best if best is not None else 'none'} events/s"
      + (f"; lowest not sustained: {limit['rate']:.0f}/s (failed: "
         + ", ".join(k for k, ok in limit["checks"].items() if not ok) + ")" if limit else ""))
if target is None:
    print("target p99 <= 1 s at 200 events/s: no 200/s stage")
else:
    print(f"target p99 <= 1 s at 200 events/s: {'met' if target else 'NOT met'} "
          f"(outside p99 {f(at200['outside_lag_s']['p99'], 3)} s)")
print(f"(results: {out})")
PY
