#!/usr/bin/env bash
# Copy throughput, side by side in one run, between two separate S3
# emulators (two ministack processes on 127.0.0.1): the source stands in for
# OSS, the destination for S3. Source != destination endpoint, so nobody can
# use server-side CopyObject: every byte streams through the tool.
#
#   rclone     `rclone copy SRC:bucket/prefix DST:bucket/prefix`
#   ossbridge  ossbridge-transfer draining a queue holding one Data Transfer
#              Hub {"key","size"} job per object, until every message is
#              deleted (the durable acknowledgement)
#
# Datasets: SMALL_COUNT x SMALL_SIZE objects, one LARGE_SIZE object, and
# MEDIUM_COUNT x MEDIUM_SIZE objects that both tools copy in 5 MiB parts, so
# CONCURRENCY multipart copies run at once (the memory test).
# Each tool runs as a fresh process per dataset; peak RSS is the kernel's
# high-water mark for that process.
#
#   bench/transfer.sh
#   SMALL_COUNT=5000 CONCURRENCY=128 bench/transfer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL_COUNT=${SMALL_COUNT:-1000}
SMALL_SIZE=${SMALL_SIZE:-4096}
LARGE_SIZE=${LARGE_SIZE:-1073741824}
CONCURRENCY=${CONCURRENCY:-64}
MEDIUM_COUNT=${MEDIUM_COUNT:-128}
MEDIUM_SIZE=${MEDIUM_SIZE:-8388608}
PART_MIB=${PART_MIB:-16}
PART_CONCURRENCY=${PART_CONCURRENCY:-4}

command -v rclone >/dev/null || { echo "bench/transfer.sh needs rclone (apt-get install rclone)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/transfer.sh needs GNU time (apt-get install time)" >&2; exit 1; }
packages=(-p ossbridge-transfer)
. bench/common.sh

start_emulator source
src=$endpoint src_pid=$emulator_pid
start_emulator destination
dst=$endpoint dst_pid=$emulator_pid
# SQS and SSM are AWS services apart from S3: their own emulator, so the
# queue's load does not land on the destination S3 that rclone has alone.
start_emulator queue
aws=$endpoint aws_pid=$emulator_pid
# CPU seconds a process has used so far (user + system).
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# Without an argument: both emulators' CPU now; with the earlier reading:
# JSON fields with what each used since.
emulator_cpu() {
  if [ $# -eq 0 ]; then echo "$(cpu "$src_pid") $(cpu "$dst_pid") $(cpu "$aws_pid")"; return; fi
  read -r s d q <<<"$1"
  python3 -c "print('\"source_emulator_cpu_seconds\": %.2f, \"destination_emulator_cpu_seconds\": %.2f, \"queue_emulator_cpu_seconds\": %.2f' % ($(cpu "$src_pid") - $s, $(cpu "$dst_pid") - $d, $(cpu "$aws_pid") - $q))"
}

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
run_id=$(date +%s)
$loadgen populate --endpoint "$src" --bucket source --prefix small/ --count "$SMALL_COUNT" --size "$SMALL_SIZE" >/dev/null
$loadgen populate --endpoint "$src" --bucket source --prefix large/ --count 1 --size "$LARGE_SIZE" --concurrency 1 >/dev/null
$loadgen populate --endpoint "$src" --bucket source --prefix medium/ --count "$MEDIUM_COUNT" --size "$MEDIUM_SIZE" --concurrency 8 >/dev/null
$loadgen bucket --endpoint "$dst" --name rclone
$loadgen bucket --endpoint "$dst" --name rclone-defaults
$loadgen bucket --endpoint "$dst" --name ossbridge
$loadgen keys --endpoint "$aws" --name /bench/oss-keys

# rclone reads its remotes from the environment (and an empty config file).
export RCLONE_CONFIG=$work/rclone.conf
touch "$RCLONE_CONFIG"
# This machine sets AWS_CA_BUNDLE, which rclone 1.60 rejects.
for remote in SRC:"$src" DST:"$dst"; do
  name=${remote%%:*}
  export "RCLONE_CONFIG_${name}_TYPE=s3" "RCLONE_CONFIG_${name}_PROVIDER=Other" \
    "RCLONE_CONFIG_${name}_ENDPOINT=${remote#*:}" "RCLONE_CONFIG_${name}_ACCESS_KEY_ID=bench" \
    "RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY=bench" "RCLONE_CONFIG_${name}_REGION=us-east-1"
done
rclone_copy() { # prefix, destination bucket, flags...
  local prefix=$1 bucket=$2 emulators
  shift 2
  emulators=$(emulator_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$work/time" env -u AWS_CA_BUNDLE rclone copy \
    "SRC:source/$prefix" "DST:$bucket/$prefix" "$@" >"$work/rclone-$bucket-$prefix.log" 2>&1
  read -r seconds rss_kib user sys <"$work/time"
  echo "{\"seconds\": $seconds, \"peak_rss_kib\": $rss_kib, \"cpu_seconds\": $(python3 -c "print($user + $sys)"), $(emulator_cpu "$emulators")}"
}
dest_size() { # bucket, prefix -> "count bytes"
  env -u AWS_CA_BUNDLE rclone size --json "DST:$1/$2" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["count"], d["bytes"])'
}

metric() { # name{labels} -> value summed over matching series
  { curl -sf "http://127.0.0.1:$metrics_port/metrics" || true; } | awk -v m="$1" 'index($0, m) == 1 {s += $NF} END {print s + 0}'
}
ossbridge_copy() { # prefix, [copy] settings
  local prefix=$1 copy=$2 queue expected started pid emulators
  queue=$($loadgen queue --endpoint "$aws" --name "bench-$prefix-$run_id")
  expected=$($loadgen enqueue --endpoint "$aws" --source-endpoint "$src" --bucket source --prefix "$prefix/" --queue-url "$queue")
  metrics_port=$(free_port)
  cat >"$work/transfer-$prefix.toml" <<TOML
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
credentials_parameter = "/bench/oss-keys"
force_path_style = true
[destination]
bucket = "ossbridge"
endpoint_url = "$dst"
force_path_style = true
[copy]
$copy
[worker]
concurrency = $CONCURRENCY
receivers = 4
wait_time_secs = 1
[metrics]
listen = "127.0.0.1:$metrics_port"
TOML
  emulators=$(emulator_cpu)
  started=$(date +%s.%N)
  target/release/ossbridge-transfer --config "$work/transfer-$prefix.toml" 2>"$work/transfer-$prefix.log" &
  pid=$!
  pids+=("$pid")
  # Done means every job's message deleted after a verified copy.
  until [ "$(metric 'ossbridge_transfer_messages_total{result="deleted"}')" -ge "$expected" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "ossbridge-transfer exited; log:" >&2; cat "$work/transfer-$prefix.log" >&2; exit 1; }
    sleep 0.05
  done
  local seconds rss failed used emulators_used
  seconds=$(python3 -c "import time; print(round(time.time() - $started, 3))")
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  used=$(cpu "$pid")
  emulators_used=$(emulator_cpu "$emulators")
  failed=$(metric ossbridge_transfer_failures_total)
  kill -TERM "$pid"
  wait "$pid" || true
  echo "{\"seconds\": $seconds, \"peak_rss_kib\": $rss, \"cpu_seconds\": $used, $emulators_used, \"failures\": $failed}"
}

tuned=(--transfers "$CONCURRENCY" --checkers "$CONCURRENCY")
rclone_defaults_small=$(rclone_copy small rclone-defaults)
rclone_small=$(rclone_copy small rclone "${tuned[@]}")
rclone_large=$(rclone_copy large rclone "${tuned[@]}" --s3-chunk-size "${PART_MIB}M" --s3-upload-concurrency "$PART_CONCURRENCY")
rclone_medium=$(rclone_copy medium rclone "${tuned[@]}" --s3-upload-cutoff 5M --s3-chunk-size 5M --s3-upload-concurrency "$PART_CONCURRENCY")
parts="part_size_mib = $PART_MIB
part_concurrency = $PART_CONCURRENCY"
ossbridge_small=$(ossbridge_copy small "$parts")
ossbridge_large=$(ossbridge_copy large "$parts")
ossbridge_medium=$(ossbridge_copy medium "multipart_threshold_mib = 5
part_size_mib = 5
part_concurrency = $PART_CONCURRENCY")

check() { # bucket, prefix, count, bytes
  local got
  got=$(dest_size "$1" "$2")
  [ "$got" = "$3 $4" ] || { echo "$1/$2 holds $got, expected $3 $4" >&2; exit 1; }
}
check rclone small "$SMALL_COUNT" $((SMALL_COUNT * SMALL_SIZE))
check rclone-defaults small "$SMALL_COUNT" $((SMALL_COUNT * SMALL_SIZE))
check ossbridge small "$SMALL_COUNT" $((SMALL_COUNT * SMALL_SIZE))
check rclone large 1 "$LARGE_SIZE"
check ossbridge large 1 "$LARGE_SIZE"
check rclone medium "$MEDIUM_COUNT" $((MEDIUM_COUNT * MEDIUM_SIZE))
check ossbridge medium "$MEDIUM_COUNT" $((MEDIUM_COUNT * MEDIUM_SIZE))

mkdir -p bench/results
out="bench/results/transfer-$(date -u +%Y%m%dT%H%M%SZ).json"
python3 - "$out" "$SMALL_COUNT" "$SMALL_SIZE" "$LARGE_SIZE" "$CONCURRENCY" \
  "$rclone_small" "$rclone_large" "$ossbridge_small" "$ossbridge_large" "$(rclone version | head -1)" \
  "$rclone_defaults_small" "$MEDIUM_COUNT" "$MEDIUM_SIZE" "$rclone_medium" "$ossbridge_medium" <<'PY'
import json, platform, subprocess, sys
out, count, size, large, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rs, rl, os_, ol = (json.loads(a) for a in sys.argv[6:10])
rd = json.loads(sys.argv[11])
mcount, msize, rm, om = int(sys.argv[12]), int(sys.argv[13]), json.loads(sys.argv[14]), json.loads(sys.argv[15])
def rates(r, objects, nbytes):
    r["objects_per_second"] = objects / r["seconds"]
    r["mb_per_second"] = nbytes / r["seconds"] / 1e6
    r["peak_rss_mib"] = r["peak_rss_kib"] / 1024
for r in (rs, os_, rd):
    rates(r, count, count * size)
for r in (rl, ol):
    rates(r, 1, large)
for r in (rm, om):
    rates(r, mcount, mcount * msize)
result = {"machine": {"cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
                      "platform": platform.platform()},
          "rclone_version": sys.argv[10], "concurrency": conc,
          "small": {"objects": count, "size": size, "rclone": rs, "rclone_defaults": rd, "ossbridge": os_,
                    "ratio_objects_per_second": os_["objects_per_second"] / rs["objects_per_second"],
                    "ratio_objects_per_second_vs_rclone_defaults": os_["objects_per_second"] / rd["objects_per_second"]},
          "large": {"size": large, "rclone": rl, "ossbridge": ol,
                    "ratio_mb_per_second": ol["mb_per_second"] / rl["mb_per_second"]},
          "medium": {"objects": mcount, "size": msize, "rclone": rm, "ossbridge": om,
                     "ratio_mb_per_second": om["mb_per_second"] / rm["mb_per_second"]}}
json.dump(result, open(out, "w"), indent=2)
row = "| {:<34} | {:>7.2f} | {:>9,.1f} | {:>7.1f} | {:>12.0f} | {:>10.2f} | {:>5.2f} / {:>5.2f} / {:>5.2f} |"
print("| run                                | seconds | objects/s |    MB/s | peak RSS MiB | tool CPU s | emulators CPU s (src / dst / queue) |")
print("|---|---|---|---|---|---|---|")
for name, r in ((f"rclone defaults, {count} x {size} B", rd), (f"rclone, {count} x {size} B", rs),
                (f"ossbridge, {count} x {size} B", os_),
                (f"rclone, 1 x {large >> 20} MiB", rl), (f"ossbridge, 1 x {large >> 20} MiB", ol),
                (f"rclone, {mcount} x {msize >> 20} MiB parts", rm), (f"ossbridge, {mcount} x {msize >> 20} MiB parts", om)):
    print(row.format(name, r["seconds"], r["objects_per_second"], r["mb_per_second"], r["peak_rss_mib"],
                     r["cpu_seconds"], r["source_emulator_cpu_seconds"], r["destination_emulator_cpu_seconds"],
                     r["queue_emulator_cpu_seconds"]))
print(f"\nsmall: ossbridge/rclone objects/s {result['small']['ratio_objects_per_second']:.2f}x "
      f"(vs rclone defaults {result['small']['ratio_objects_per_second_vs_rclone_defaults']:.2f}x); "
      f"large: MB/s {result['large']['ratio_mb_per_second']:.2f}x; "
      f"medium: MB/s {result['medium']['ratio_mb_per_second']:.2f}x   (results: {out})")
PY
