#!/usr/bin/env bash
# Peak memory of `ossbridge-transfer sync` against bucket size: does it
# stay flat from 10,000 to 100,000 objects?
#
# Two ministack processes on 127.0.0.1: the source stands in for OSS, the
# destination for S3 (and serves SSM for the source keys). Each count gets
# its own pair of buckets, filled with tiny objects spread over FANOUT
# top-level prefixes; the destination holds identical copies carrying the
# `ossbridge-source-etag` ossbridge records. So the sync lists both sides
# in full and HEADs every destination object (sizes agree, so only the
# recorded ETag can tell), but copies nothing: what is measured is the
# listing + diff + check machinery, whose memory is what could grow with
# the bucket, not copy buffers (bounded by worker.max_bytes_in_flight_mib,
# measured in bench/transfer.sh).
#
#   bench/sync.sh
#   COUNTS="10000 100000" FANOUT=16 bench/sync.sh
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-"10000 100000"}
SIZE=${SIZE:-16}
FANOUT=${FANOUT:-16}
POPULATE_CONCURRENCY=${POPULATE_CONCURRENCY:-64}
HEAD_CONCURRENCY=${HEAD_CONCURRENCY:-32}

[ -x /usr/bin/time ] || { echo "bench/sync.sh needs GNU time (apt-get install time)" >&2; exit 1; }
packages=(-p ossbridge-transfer)
. bench/common.sh

start_emulator source
src=$endpoint
start_emulator destination
dst=$endpoint

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
$loadgen keys --endpoint "$dst" --name /bench/oss-keys

results=()
for count in $COUNTS; do
  populated=$($loadgen populate --endpoint "$src" --bucket "source-$count" --prefix "" --count "$count" \
    --size "$SIZE" --fanout "$FANOUT" --concurrency "$POPULATE_CONCURRENCY" \
    --mirror-endpoint "$dst" --mirror-bucket "destination-$count")
  echo "populated $count: $populated" >&2
  cat >"$work/sync-$count.toml" <<TOML
[log]
format = "json"
level = "info"
[aws]
region = "us-east-1"
endpoint_url = "$dst"
[source]
bucket = "source-$count"
endpoint_url = "$src"
region = "us-east-1"
credentials_parameter = "/bench/oss-keys"
force_path_style = true
[destination]
bucket = "destination-$count"
endpoint_url = "$dst"
force_path_style = true
TOML
  /usr/bin/time -f '%e %M %U %S' -o "$work/time-$count" target/release/ossbridge-transfer sync \
    --config "$work/sync-$count.toml" --progress log --head-concurrency "$HEAD_CONCURRENCY" \
    >"$work/sync-$count.out" 2>"$work/sync-$count.log" || {
    echo "sync of $count objects failed:" >&2; cat "$work/sync-$count.out" "$work/sync-$count.log" >&2; exit 1; }
  read -r seconds rss_kib user sys <"$work/time-$count"
  summary=$(grep '"event":"sync_summary"' "$work/sync-$count.log")
  results+=("{\"objects\": $count, \"seconds\": $seconds, \"peak_rss_kib\": $rss_kib, \"cpu_seconds\": $(python3 -c "print(round($user + $sys, 2))"), \"populate\": $populated, \"summary\": $summary}")
  echo "sync $count: ${seconds}s, peak RSS ${rss_kib} KiB" >&2
done

mkdir -p bench/results
out="bench/results/sync-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$out" "$SIZE" "$FANOUT" "$HEAD_CONCURRENCY" "${results[@]}" <<'PY'
import json, platform, subprocess, sys
out, size, fanout, heads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
runs = [json.loads(a) for a in sys.argv[5:]]
for r in runs:
    s = r["summary"]
    # Nothing may be copied: the run measures listing + diff + HEADs.
    assert s["source_objects"] == r["objects"] and s["already_current"] == r["objects"], s
    assert s["to_copy"] == 0 and s["failed"] == 0, s
    r["peak_rss_mib"] = round(r["peak_rss_kib"] / 1024, 1)
    r["objects_per_second"] = round(r["objects"] / r["seconds"], 1)
result = {
    "machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                "platform": platform.platform()},
    "object_size": size, "fanout": fanout, "head_concurrency": heads,
    "emulator": "ministack (source and destination, separate processes)",
    "runs": runs,
}
if len(runs) >= 2:
    result["peak_rss_ratio_last_to_first"] = round(runs[-1]["peak_rss_kib"] / runs[0]["peak_rss_kib"], 3)
with open(out, "w") as f:
    json.dump(result, f, indent=2)
print(out)
print(json.dumps({r["objects"]: {"seconds": r["seconds"], "peak_rss_mib": r["peak_rss_mib"]} for r in runs}))
PY
