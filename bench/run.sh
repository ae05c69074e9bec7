#!/usr/bin/env bash
# Runs ladingbench against Lading and CNCF Distribution v3.1.1 side by side,
# both on the filesystem driver in fresh directories on the same disk, after
# measuring the machine's ceilings and (with strace) the fsyncs each server
# makes per committed blob. Writes bench/results/latest.{json,md,txt}.
# With S3=1 it then runs the same benchmark with both registries on the S3
# driver against versitygw, into bench/results/latest-s3.* (no targets;
# Distribution's redirects to the S3 server are turned off, so both
# registries serve the bytes themselves). With S3_REDIS=1 as well, a third
# pass does it again with both registries caching blob descriptors in one
# Redis (Lading's locks go there too), as replicas run, into
# bench/results/latest-s3-redis.*.
#
#   bench/run.sh [--quick] [more ladingbench flags, e.g. --rounds 5 --push]
#
# Environment:
#   BENCH_DIR     where the temporary data directories go (default: the
#                 repository's parent, so on the disk of the checkout)
#   BENCH_LADING_PORT   BENCH_DIST_PORT   S3_PORT   ports on 127.0.0.1 (5101, 5102, 5103)
#   CEILING_SIZE  file size for the ceilings (default 1GiB)
#   CEILING_ROUNDS  repetitions of the ceilings, median kept (default 5)
#   FSYNC_BLOBS   small blobs pushed under strace; 0 skips it (default 200)
#   S3=1          add the S3 pass (needs versitygw in GOPATH/bin)
#   S3_ARGS       ladingbench flags for the S3 passes (default: the same as
#                 the filesystem pass)
#   S3_REDIS=1    add the S3 pass with Redis (needs redis-server: apt-get
#                 install redis-server); REDIS_PORT (5104)
#   KEEP=1        keep the data directories and logs
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bench_dir=${BENCH_DIR:-$(dirname "$repo")}
lading_port=${BENCH_LADING_PORT:-5101}
dist_port=${BENCH_DIST_PORT:-5102}
s3_port=${S3_PORT:-5103}
redis_port=${REDIS_PORT:-5104}
ceiling_size=${CEILING_SIZE:-1GiB}
ceiling_rounds=${CEILING_ROUNDS:-5}
fsync_blobs=${FSYNC_BLOBS:-200}
dist_version=v3.1.1
results=$repo/bench/results
dist_url=http://127.0.0.1:$dist_port
lading_url=http://127.0.0.1:$lading_port

work=$(mktemp -d "$bench_dir/ladingbench.XXXXXX")
pids=()
stop_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
# stop_registries stops the two registries, leaving what they stand on.
stop_registries() {
	kill "$dist_pid" "$lading_pid" 2>/dev/null || true
	wait "$dist_pid" "$lading_pid" 2>/dev/null || true
	local rest=() p
	for p in "${pids[@]}"; do [[ $p == "$dist_pid" || $p == "$lading_pid" ]] || rest+=("$p"); done
	pids=("${rest[@]}")
}
cleanup() {
	stop_all
	if [[ ${KEEP:-} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=("$lading_port" "$dist_port" "$s3_port")
[[ ${S3_REDIS:-} == 1 ]] && ports+=("$redis_port")
for p in "${ports[@]}"; do
	port_free "$p" || { echo "port $p is in use; set BENCH_LADING_PORT, BENCH_DIST_PORT, S3_PORT or REDIS_PORT" >&2; exit 1; }
done

# Distribution: installed once into GOPATH/bin and reused.
gobin=$(go env GOPATH)/bin
registry=$gobin/registry
if ! { [[ -x $registry ]] && "$registry" --version 2>/dev/null | grep -q "$dist_version"; }; then
	echo "installing CNCF Distribution $dist_version" >&2
	go install "github.com/distribution/distribution/v3/cmd/registry@$dist_version"
fi

cd "$repo"
go build -o "$work/lading" ./cmd/lading
go build -o "$work/ladingbench" ./cmd/ladingbench
bench=$work/ladingbench

echo "== ceilings (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
"$bench" ceilings --dir "$work" --size "$ceiling_size" --rounds "$ceiling_rounds" --json "$work/ceilings.json"

# start_registries STORAGE_YAML LADING_ENV...: Distribution with the given
# storage section of its config, Lading with the given environment; with
# $dist_redis set, Distribution caches blob descriptors in that Redis.
dist_redis=
start_registries() {
	local storage=$1 cache=inmemory redis=
	shift
	if [[ -n $dist_redis ]]; then
		cache=redis
		redis="redis:
  addrs: [$dist_redis]"
	fi
	cat >"$work/distribution.yml" <<YAML
version: 0.1
log:
  level: info
storage:
$storage
  cache:
    blobdescriptor: $cache
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$dist_port
$redis
YAML
	"$registry" serve "$work/distribution.yml" >>"$work/distribution.log" 2>&1 &
	dist_pid=$!
	pids+=("$dist_pid")
	env "$@" "$work/lading" serve --addr "127.0.0.1:$lading_port" >>"$work/lading.log" 2>&1 &
	lading_pid=$!
	pids+=("$lading_pid")
}

# run_bench SUFFIX FLAGS...: the timed, interleaved run, baseline first.
run_bench() {
	local suffix=$1
	shift
	echo "== benchmark$suffix (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	mkdir -p "$results"
	# Into the results only whole: a run with failures goes to
	# latest$suffix.partial.*, leaving the last complete one in place.
	local out=$work/latest$suffix
	if "$bench" --data-dir "$work" \
		--json "$out.json" --markdown "$out.md" "$@" \
		"distribution=$dist_url" "distribution=$dist_pid" "lading=$lading_url" "lading=$lading_pid" |
		tee "$out.txt"; then
		for ext in json md txt; do mv "$out.$ext" "$results/latest$suffix.$ext"; done
	else
		failed=1
		for ext in json md txt; do [[ -f $out.$ext ]] && mv "$out.$ext" "$results/latest$suffix.partial.$ext"; done
		echo "run failed: its report is in bench/results/latest$suffix.partial.*" >&2
	fi
}
failed=0

# --- filesystem ---
mkdir -p "$work/distribution-data" "$work/lading-data"
start_registries "  filesystem:
    rootdirectory: $work/distribution-data" \
	LADING_STORAGE_DRIVER=filesystem "LADING_STORAGE_FILESYSTEM_ROOT=$work/lading-data"

# fsyncs per committed blob: strace counts every call that makes data
# durable (fsync, fdatasync, syncfs, sync, sync_file_range) in every thread
# of the server while a batch of small blobs is pushed; a syncfs shared by
# concurrent commits counts once. Tracing slows the server, so this pass
# is separate from the timed one.
fsync_args=()
if [[ $fsync_blobs != 0 ]] && command -v strace >/dev/null; then
	echo "== fsyncs per blob ($fsync_blobs small blobs under strace)" >&2
	entries=()
	for spec in "distribution $dist_url $dist_pid" "lading $lading_url $lading_pid"; do
		read -r name url pid <<<"$spec"
		out=$work/$name.strace
		strace -f -c -e trace=fsync,fdatasync,syncfs,sync,sync_file_range -o "$out" -p "$pid" 2>/dev/null &
		sp=$!
		sleep 1
		"$bench" --small --rounds 1 --small-count "$fsync_blobs" "$name=$url" >/dev/null
		# strace may have failed to attach (ptrace not allowed): no count then.
		kill -INT "$sp" 2>/dev/null || true
		wait "$sp" || true
		if [[ ! -s $out ]]; then
			echo "$name: strace could not attach; fsyncs not counted" >&2
			continue
		fi
		calls=$(awk '$NF ~ /^(fsync|fdatasync|syncfs|sync|sync_file_range)$/ {s+=$4} END {print s+0}' "$out")
		echo "$name: $(awk '$NF ~ /sync/ {printf "%s %s, ", $NF, $4}' "$out")for $fsync_blobs blobs" >&2
		entries+=("\"$name\": $(awk -v c="$calls" -v n="$fsync_blobs" 'BEGIN {printf "%.2f", c/n}')")
	done
	(IFS=,; echo "{${entries[*]}}") >"$work/fsyncs.json"
	fsync_args=(--fsyncs "$work/fsyncs.json")
else
	echo "== strace not found (apt-get install strace) or FSYNC_BLOBS=0: fsyncs not counted" >&2
fi

run_bench "" --ceilings "$work/ceilings.json" "${fsync_args[@]}" "$@"
stop_all

# --- S3 on versitygw ---
[[ ${S3:-} == 1 ]] || exit $failed
versitygw=$gobin/versitygw
[[ -x $versitygw ]] || { echo "S3=1 needs versitygw: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2; exit 1; }
if [[ ${S3_REDIS:-} == 1 ]] && ! command -v redis-server >/dev/null; then
	echo "S3_REDIS=1 needs redis-server: apt-get install redis-server" >&2
	exit 1
fi
key=bench$RANDOM$RANDOM
secret=secret$RANDOM$RANDOM$RANDOM
# versitygw's posix backend serves each directory below its root as a bucket.
mkdir -p "$work/s3"
ROOT_ACCESS_KEY=$key ROOT_SECRET_KEY=$secret "$versitygw" --port "127.0.0.1:$s3_port" --quiet posix "$work/s3" >"$work/versitygw.log" 2>&1 &
pids+=("$!")
sleep 1
# s3_registries BUCKET_SUFFIX LADING_ENV...: both registries on versitygw,
# each in a fresh bucket of its own.
s3_registries() {
	local suffix=$1
	shift
	mkdir -p "$work/s3/distribution$suffix" "$work/s3/lading$suffix"
	start_registries "  s3:
    accesskey: $key
    secretkey: $secret
    region: us-east-1
    regionendpoint: http://127.0.0.1:$s3_port
    forcepathstyle: true
    secure: false
    chunksize: 16777216
    bucket: distribution$suffix
  redirect:
    disable: true" \
		LADING_STORAGE_DRIVER=s3 "LADING_STORAGE_S3_ENDPOINT=http://127.0.0.1:$s3_port" LADING_STORAGE_S3_REGION=us-east-1 \
		"LADING_STORAGE_S3_BUCKET=lading$suffix" LADING_STORAGE_S3_FORCEPATHSTYLE=true \
		"LADING_STORAGE_S3_ACCESSKEY=$key" "LADING_STORAGE_S3_SECRETKEY=$secret" "$@"
}
s3_args=("$@")
if [[ -n ${S3_ARGS:-} ]]; then
	read -r -a s3_args <<<"$S3_ARGS"
fi
s3_registries ""
run_bench -s3 --targets=false "${s3_args[@]}"
stop_registries

# --- S3 with Redis ---
[[ ${S3_REDIS:-} == 1 ]] || exit $failed
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=("$!")
sleep 0.5
dist_redis=127.0.0.1:$redis_port
s3_registries -redis "LADING_REDIS_ADDR=127.0.0.1:$redis_port"
run_bench -s3-redis --targets=false "${s3_args[@]}"
exit $failed
