#!/usr/bin/env bash
# Cross-border copies, where round trips rather than CPU are the bound:
# ossbridge-transfer against rclone, in one run, with the source (standing
# in for OSS in another region) behind SOURCE_LATENCY_MS per request and the
# destination S3 behind DEST_LATENCY_MS.
#
# Three ministack processes on 127.0.0.1 as in bench/transfer.sh (source,
# destination, SQS+SSM). In front of the source and of the destination,
# each run gets its own pair of the test kit's S3 proxies (`ossbridge-loadgen
# proxy --latency-ms`), which wait that long before handling every request
# and count requests by operation. SQS and SSM are reached directly: in
# production the queue is in the workers' region. Source != destination,
# so every byte streams through the tool. What the proxies model is a
# round trip per request; not connection set-up (connections are reused)
# nor a bandwidth-delay limit on one stream.
#
# Datasets: COUNT x SIZE objects (small/) and one LARGE_SIZE object
# (large/). Runs, each a fresh process copying into its own destination
# bucket:
#
#   rclone defaults     `rclone copy SRC:source/P DST:B/P` (--transfers 4
#                       --checkers 8; 5 MiB chunks x4 uploads; one GET
#                       stream per object)
#   rclone at N         --transfers N --checkers N, N = ossbridge-transfer's
#                       default worker.concurrency (read from
#                       transfer/src/config.rs)
#   ossbridge defaults  ossbridge-transfer with no [copy] or [worker]
#                       settings, draining one Data Transfer Hub
#                       {"key","size"} job per object until every message
#                       is deleted (the durable acknowledgement)
#   ossbridge tuned     worker.concurrency = TUNED_CONCURRENCY (64),
#                       receivers = 4: Little's law, ~62 ms per small object
#                       (one GET at 60 ms, one PUT at 2 ms) at 64 in flight
#                       asks for ~1,000 objects/s, more than the emulators
#                       on two cores give, so the bound moves back to CPU;
#                       copy.part_concurrency = TUNED_PART_CONCURRENCY (8)
#                       for the large object: 16 MiB ranged GETs, each
#                       paying the source's round trip, twice as many at once
#   rclone tuned        --transfers/--checkers TUNED_CONCURRENCY, and for the
#                       large object --s3-chunk-size <ossbridge's part size>
#                       --s3-upload-concurrency TUNED_PART_CONCURRENCY
#
# Seconds are wall clock (rclone's from its start; ossbridge's from its
# start, SSM and first receive included, until the last message is
# deleted); peak RSS is the kernel's high-water mark of the tool's process;
# CPU is the tool's, each emulator's and the two proxies' during the run.
# Every destination is then checked for the source's count and bytes. The
# result goes to bench/results/latency-<UTC time>.json, a table and the
# issue's four targets to stdout. Run it alone on the machine:
#
#   flock /tmp/bench.lock bench/latency.sh
#   COUNT=50 LARGE_SIZE=$((64 << 20)) bench/latency.sh            # smoke test
#   SOURCE_LATENCY_MS=150 TUNED_CONCURRENCY=128 bench/latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-2000}
SIZE=${SIZE:-65536}
LARGE_SIZE=${LARGE_SIZE:-1073741824}
SOURCE_LATENCY_MS=${SOURCE_LATENCY_MS:-60}
DEST_LATENCY_MS=${DEST_LATENCY_MS:-2}
TUNED_CONCURRENCY=${TUNED_CONCURRENCY:-64}
TUNED_PART_CONCURRENCY=${TUNED_PART_CONCURRENCY:-8}

command -v rclone >/dev/null || { echo "bench/latency.sh needs rclone (apt-get install rclone)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/latency.sh needs GNU time (apt-get install time)" >&2; exit 1; }

# ossbridge-transfer's defaults, from the code they live in, so "defaults"
# and "equal concurrency" follow it.
default_of() { # struct, field
  awk -v head="impl Default for $1 " -v field="$2:" '
    index($0, head) == 1 {inside = 1}
    inside && $1 == field {sub(/,$/, "", $2); print $2; exit}' transfer/src/config.rs
}
DEFAULT_CONCURRENCY=$(default_of WorkerConfig concurrency)
DEFAULT_PART_MIB=$(default_of CopyConfig part_size_mib)
DEFAULT_PART_CONCURRENCY=$(default_of CopyConfig part_concurrency)
DEFAULT_THRESHOLD_MIB=$(default_of CopyConfig multipart_threshold_mib)
for v in "$DEFAULT_CONCURRENCY" "$DEFAULT_PART_MIB" "$DEFAULT_PART_CONCURRENCY" "$DEFAULT_THRESHOLD_MIB"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "could not read ossbridge-transfer's defaults from transfer/src/config.rs" >&2; exit 1; }
done

packages=(-p ossbridge-transfer)
. bench/common.sh

start_emulator source
src=$endpoint src_pid=$emulator_pid
start_emulator destination
dst=$endpoint dst_pid=$emulator_pid
start_emulator queue
aws=$endpoint aws_pid=$emulator_pid
# CPU seconds a process has used so far (user + system).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
run_id=$(date +%s)
# Straight to the emulator: filling the source is not what is measured.
$loadgen populate --endpoint "$src" --bucket source --prefix small/ --count "$COUNT" --size "$SIZE" >/dev/null
$loadgen populate --endpoint "$src" --bucket source --prefix large/ --count 1 --size "$LARGE_SIZE" --concurrency 1 >/dev/null
$loadgen keys --endpoint "$aws" --name /bench/oss-keys

# rclone reads its remotes from the environment (and an empty config file);
# SRC and DST get each run's proxies, CHECK is the destination emulator.
export RCLONE_CONFIG=$work/rclone.conf
touch "$RCLONE_CONFIG"
for name in SRC DST CHECK; do
  export "RCLONE_CONFIG_${name}_TYPE=s3" "RCLONE_CONFIG_${name}_PROVIDER=Other" \
    "RCLONE_CONFIG_${name}_ACCESS_KEY_ID=bench" "RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY=bench" \
    "RCLONE_CONFIG_${name}_REGION=us-east-1"
done
export RCLONE_CONFIG_CHECK_ENDPOINT=$dst

mkdir -p "$work/runs"
# A run's proxies: one with SOURCE_LATENCY_MS before the source, one with
# DEST_LATENCY_MS before the destination; sets $src_proxy and $dst_proxy.
start_proxy() { # name, upstream, latency ms
  local out=$work/proxy-$1.out
  $loadgen proxy --upstream "$2" --latency-ms "$3" >"$out" 2>"$work/proxy-$1.log" &
  proxy_pid=$!
  pids+=("$proxy_pid")
  for _ in $(seq 200); do [ -n "$(sed -n 1p "$out")" ] && break; sleep 0.05; done
  proxy_url=$(sed -n 1p "$out")
  [ -n "$proxy_url" ] || { echo "proxy $1 did not start: $(cat "$work/proxy-$1.log")" >&2; exit 1; }
}
begin_run() { # name
  start_proxy "$1-source" "$src" "$SOURCE_LATENCY_MS"
  src_proxy=$proxy_url src_proxy_pid=$proxy_pid
  start_proxy "$1-destination" "$dst" "$DEST_LATENCY_MS"
  dst_proxy=$proxy_url dst_proxy_pid=$proxy_pid
  emulators_before="$(cpu "$src_pid") $(cpu "$dst_pid") $(cpu "$aws_pid")"
}
# Stops the run's proxies (their counts land on SIGTERM) and writes
# $work/runs/NAME.json: the tool's fields, the emulators' and proxies' CPU
# during the run, and requests by operation at each side.
end_run() { # name, JSON fields of the tool
  local name=$1 s d q emulators proxies_cpu pid side
  read -r s d q <<<"$emulators_before"
  emulators="\"source_emulator_cpu_seconds\": $(python3 -c "print(round($(cpu "$src_pid") - $s, 2))"),"
  emulators+=" \"destination_emulator_cpu_seconds\": $(python3 -c "print(round($(cpu "$dst_pid") - $d, 2))"),"
  emulators+=" \"queue_emulator_cpu_seconds\": $(python3 -c "print(round($(cpu "$aws_pid") - $q, 2))")"
  proxies_cpu="\"source_proxy_cpu_seconds\": $(cpu "$src_proxy_pid"), \"destination_proxy_cpu_seconds\": $(cpu "$dst_proxy_pid")"
  for pid in "$src_proxy_pid" "$dst_proxy_pid"; do
    kill -TERM "$pid"
    wait "$pid" || true
  done
  for side in source destination; do
    [ -n "$(sed -n 2p "$work/proxy-$name-$side.out")" ] \
      || { echo "the $side proxy of $name printed no counts: $(cat "$work/proxy-$name-$side.log")" >&2; exit 1; }
  done
  echo "{$2, $emulators, $proxies_cpu, \"source_requests\": $(sed -n 2p "$work/proxy-$name-source.out"), \"destination_requests\": $(sed -n 2p "$work/proxy-$name-destination.out")}" \
    >"$work/runs/$name.json"
  echo "$name: $2" >&2
}

rclone_run() { # name, prefix, destination bucket, flags...
  local name=$1 prefix=$2 bucket=$3 seconds rss_kib user sys
  shift 3
  $loadgen bucket --endpoint "$dst" --name "$bucket"
  begin_run "$name"
  # This machine sets AWS_CA_BUNDLE, which rclone 1.60 rejects.
  /usr/bin/time -f '%e %M %U %S' -o "$work/time-$name" env -u AWS_CA_BUNDLE \
    RCLONE_CONFIG_SRC_ENDPOINT="$src_proxy" RCLONE_CONFIG_DST_ENDPOINT="$dst_proxy" \
    rclone copy "SRC:source/$prefix" "DST:$bucket/$prefix" "$@" >"$work/$name.log" 2>&1 \
    || { echo "rclone $name failed:" >&2; cat "$work/$name.log" >&2; exit 1; }
  read -r seconds rss_kib user sys <"$work/time-$name"
  end_run "$name" "\"tool\": \"rclone\", \"flags\": \"$*\", \"prefix\": \"$prefix\", \"bucket\": \"$bucket\", \"seconds\": $seconds, \"peak_rss_kib\": $rss_kib, \"cpu_seconds\": $(python3 -c "print(round($user + $sys, 2))")"
}

metric() { # name{labels} -> value summed over matching series
  { curl -sf "http://127.0.0.1:$metrics_port/metrics" || true; } | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'
}
ossbridge_run() { # name, prefix, destination bucket, extra TOML (tables after [metrics])
  local name=$1 prefix=$2 bucket=$3 settings=$4 queue expected started pid seconds rss used failed
  $loadgen bucket --endpoint "$dst" --name "$bucket"
  queue=$($loadgen queue --endpoint "$aws" --name "latency-$name-$run_id")
  expected=$($loadgen enqueue --endpoint "$aws" --source-endpoint "$src" --bucket source --prefix "$prefix/" --queue-url "$queue")
  begin_run "$name"
  metrics_port=$(free_port)
  cat >"$work/$name.toml" <<TOML
queue_url = "$queue"
[log]
format = "json"
level = "warn"
[aws]
region = "us-east-1"
endpoint_url = "$aws"
[source]
bucket = "source"
endpoint_url = "$src_proxy"
region = "us-east-1"
credentials_parameter = "/bench/oss-keys"
force_path_style = true
[destination]
bucket = "$bucket"
endpoint_url = "$dst_proxy"
force_path_style = true
[metrics]
listen = "127.0.0.1:$metrics_port"
$settings
TOML
  started=$(date +%s.%N)
  target/release/ossbridge-transfer --config "$work/$name.toml" 2>"$work/$name.log" &
  pid=$!
  pids+=("$pid")
  # Done means every job's message deleted after a verified copy.
  until [ "$(metric 'ossbridge_transfer_messages_total{result="deleted"}')" -ge "$expected" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "ossbridge-transfer ($name) exited; log:" >&2; cat "$work/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  seconds=$(python3 -c "import time; print(round(time.time() - $started, 3))")
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  used=$(cpu "$pid")
  failed=$(metric ossbridge_transfer_failures_total)
  kill -TERM "$pid"
  wait "$pid" || true
  end_run "$name" "\"tool\": \"ossbridge\", \"settings\": $(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$settings"), \"prefix\": \"$prefix\", \"bucket\": \"$bucket\", \"seconds\": $seconds, \"peak_rss_kib\": $rss, \"cpu_seconds\": $used, \"failures\": $failed"
}

n=$DEFAULT_CONCURRENCY t=$TUNED_CONCURRENCY
tuned_worker="[worker]
concurrency = $t
receivers = 4"
# COUNT small objects.
rclone_run small-rclone-defaults small rclone-defaults
rclone_run "small-rclone-$n" small "rclone-$n" --transfers "$n" --checkers "$n"
ossbridge_run small-ossbridge-defaults small ossbridge-defaults ""
ossbridge_run small-ossbridge-tuned small ossbridge-tuned "$tuned_worker"
rclone_run small-rclone-tuned small rclone-tuned --transfers "$t" --checkers "$t"
# One large object: the tuned runs copy TUNED_PART_CONCURRENCY parts at once,
# in ossbridge's default part size.
rclone_run large-rclone-defaults large rclone-defaults
ossbridge_run large-ossbridge-defaults large ossbridge-defaults ""
ossbridge_run large-ossbridge-tuned large ossbridge-tuned "$tuned_worker
[copy]
part_concurrency = $TUNED_PART_CONCURRENCY"
rclone_run large-rclone-tuned large rclone-tuned --transfers "$t" --checkers "$t" \
  --s3-chunk-size "${DEFAULT_PART_MIB}M" --s3-upload-concurrency "$TUNED_PART_CONCURRENCY"

# Every destination holds exactly the source's objects and bytes.
for bucket in rclone-defaults "rclone-$n" rclone-tuned ossbridge-defaults ossbridge-tuned; do
  for check in "small $COUNT $((COUNT * SIZE))" "large 1 $LARGE_SIZE"; do
    read -r prefix count bytes <<<"$check"
    [ "$bucket" = "rclone-$n" ] && [ "$prefix" = large ] && continue
    got=$(env -u AWS_CA_BUNDLE rclone size --json "CHECK:$bucket/$prefix" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["count"], d["bytes"])')
    [ "$got" = "$count $bytes" ] || { echo "$bucket/$prefix holds $got, expected $count $bytes" >&2; exit 1; }
  done
done

mkdir -p bench/results
out="bench/results/latency-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$out" "$work/runs" "$(rclone version | head -1)" "$COUNT" "$SIZE" "$LARGE_SIZE" \
  "$DEFAULT_CONCURRENCY" "$TUNED_CONCURRENCY" "$TUNED_PART_CONCURRENCY" "$SOURCE_LATENCY_MS" "$DEST_LATENCY_MS" \
  "$DEFAULT_PART_MIB" "$DEFAULT_PART_CONCURRENCY" "$DEFAULT_THRESHOLD_MIB" <<'PY'
import json, os, platform, subprocess, sys
out, runs_dir, rclone_version = sys.argv[1:4]
count, size, large, n, t, tp, src_ms, dst_ms, part_mib, part_conc, threshold = map(int, sys.argv[4:15])
runs = {f[:-5]: json.load(open(os.path.join(runs_dir, f))) for f in os.listdir(runs_dir)}
for name, r in runs.items():
    objects, nbytes = (count, count * size) if name.startswith("small-") else (1, large)
    r["objects"] = objects
    r["objects_per_second"] = objects / r["seconds"]
    r["mb_per_second"] = nbytes / r["seconds"] / 1e6
    r["peak_rss_mib"] = r["peak_rss_kib"] / 1024
    for side in ("source", "destination"):
        total = sum(r[side + "_requests"]["operations"].values())
        r[side + "_requests_per_object"] = total / objects
small = lambda tool: runs[f"small-{tool}"]
big = lambda tool: runs[f"large-{tool}"]
targets = [
    ("ossbridge defaults objects/s >= 3x rclone defaults", 3.0,
     small("ossbridge-defaults")["objects_per_second"] / small("rclone-defaults")["objects_per_second"]),
    (f"ossbridge defaults objects/s >= 1.2x rclone --transfers {n}", 1.2,
     small("ossbridge-defaults")["objects_per_second"] / small(f"rclone-{n}")["objects_per_second"]),
    ("ossbridge defaults MB/s >= 1x rclone defaults, 1 large object", 1.0,
     big("ossbridge-defaults")["mb_per_second"] / big("rclone-defaults")["mb_per_second"]),
    (f"ossbridge tuned MB/s >= 1x rclone tuned ({tp} parts at once), 1 large object", 1.0,
     big("ossbridge-tuned")["mb_per_second"] / big("rclone-tuned")["mb_per_second"]),
]
informative = {
    f"ossbridge tuned / rclone tuned objects/s (--transfers {t})":
        small("ossbridge-tuned")["objects_per_second"] / small("rclone-tuned")["objects_per_second"],
}
peak = max(r["peak_rss_mib"] for k, r in runs.items() if r["tool"] == "ossbridge")
result = {
    "machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                "platform": platform.platform()},
    "rclone_version": rclone_version,
    "settings": {"source_latency_ms": src_ms, "destination_latency_ms": dst_ms,
                 "count": count, "size": size, "large_size": large,
                 "ossbridge_defaults": {"worker.concurrency": n, "copy.part_size_mib": part_mib,
                                        "copy.part_concurrency": part_conc,
                                        "copy.multipart_threshold_mib": threshold},
                 "tuned_concurrency": t, "tuned_part_concurrency": tp},
    "runs": runs,
    "targets": [{"target": name, "ratio": ratio, "met": ratio >= goal} for name, goal, ratio in targets]
               + [{"target": "ossbridge peak RSS <= 256 MiB (all runs)", "peak_rss_mib": peak, "met": peak <= 256}],
    "informative": informative,
}
json.dump(result, open(out, "w"), indent=2)

def ops(r, side):
    o = r[side + "_requests"]["operations"]
    return ", ".join(f"{k} {v / r['objects']:.3g}" for k, v in sorted(o.items()))
order = ["small-rclone-defaults", f"small-rclone-{n}", "small-ossbridge-defaults", "small-ossbridge-tuned",
         "small-rclone-tuned", "large-rclone-defaults", "large-ossbridge-defaults", "large-rclone-tuned",
         "large-ossbridge-tuned"]
print(f"\nsource +{src_ms} ms, destination +{dst_ms} ms per request; "
      f"{count} x {size} B and 1 x {large >> 20} MiB; {rclone_version}\n")
print("| run | seconds | objects/s | MB/s | peak RSS MiB | tool CPU s | requests/object src / dst | emulators CPU s src / dst / queue | proxies CPU s src / dst |")
print("|---|---:|---:|---:|---:|---:|---|---|---|")
for name in order:
    r = runs[name]
    label = name.replace("small-", f"{count} x {size >> 10} KiB, ").replace("large-", f"1 x {large >> 20} MiB, ")
    print(f"| {label} | {r['seconds']:.2f} | {r['objects_per_second']:,.1f} | {r['mb_per_second']:.1f} | "
          f"{r['peak_rss_mib']:.0f} | {r['cpu_seconds']:.2f} | "
          f"{r['source_requests_per_object']:.3f} / {r['destination_requests_per_object']:.3f} | "
          f"{r['source_emulator_cpu_seconds']:.2f} / {r['destination_emulator_cpu_seconds']:.2f} / "
          f"{r['queue_emulator_cpu_seconds']:.2f} | "
          f"{r['source_proxy_cpu_seconds']:.2f} / {r['destination_proxy_cpu_seconds']:.2f} |")
print("\nrequests by operation, per object (source | destination):")
for name in order:
    print(f"  {name:<26} {ops(runs[name], 'source')} | {ops(runs[name], 'destination')}")
print("\ntargets:")
for name, goal, ratio in targets:
    print(f"  {name}: {ratio:.2f}x  {'met' if ratio >= goal else 'NOT met'}")
print(f"  ossbridge peak RSS <= 256 MiB: {peak:.0f} MiB  {'met' if peak <= 256 else 'NOT met'}")
for name, ratio in informative.items():
    print(f"  ({name}: {ratio:.2f}x)")
print(f"\nresults: {out}")
PY
