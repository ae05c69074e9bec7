#!/usr/bin/env bash
# Runs ladingbench against Lading and CNCF Distribution v3.1.1 side by side,
# both on the filesystem driver in fresh directories on the same disk, after
# measuring the machine's ceilings and (with strace) the fsyncs each server
# makes per committed blob. Writes bench/results/latest.{json,md,txt}.
#
#   bench/run.sh [--quick] [more ladingbench flags, e.g. --rounds 5 --push]
#
# Environment:
#   BENCH_DIR     where the temporary data directories go (default: the
#                 repository's parent, so on the disk of the checkout)
#   LADING_PORT   DIST_PORT   listen ports on 127.0.0.1 (default 5101, 5102)
#   CEILING_SIZE  file size for the ceilings (default 1GiB)
#   FSYNC_BLOBS   small blobs pushed under strace; 0 skips it (default 200)
#   KEEP=1        keep the data directories and logs
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bench_dir=${BENCH_DIR:-$(dirname "$repo")}
lading_port=${LADING_PORT:-5101}
dist_port=${DIST_PORT:-5102}
ceiling_size=${CEILING_SIZE:-1GiB}
fsync_blobs=${FSYNC_BLOBS:-200}
dist_version=v3.1.1
results=$repo/bench/results

work=$(mktemp -d "$bench_dir/ladingbench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ ${KEEP:-} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$lading_port" "$dist_port"; do
	port_free "$p" || { echo "port $p is in use; set LADING_PORT / DIST_PORT" >&2; exit 1; }
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
"$bench" ceilings --dir "$work" --size "$ceiling_size" --json "$work/ceilings.json"

mkdir -p "$work/distribution-data" "$work/lading-data"
cat >"$work/distribution.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/distribution-data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$dist_port
YAML
"$registry" serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
dist_pid=$!
pids+=("$dist_pid")
"$work/lading" serve --root "$work/lading-data" --addr "127.0.0.1:$lading_port" >"$work/lading.log" 2>&1 &
lading_pid=$!
pids+=("$lading_pid")

dist_url=http://127.0.0.1:$dist_port
lading_url=http://127.0.0.1:$lading_port

# fsyncs per committed blob: strace counts fsync and fdatasync in every
# thread of the server while a batch of small blobs is pushed. Tracing
# slows the server, so this pass is separate from the timed one.
fsync_args=()
if [[ $fsync_blobs != 0 ]] && command -v strace >/dev/null; then
	echo "== fsyncs per blob ($fsync_blobs small blobs under strace)" >&2
	entries=()
	for spec in "distribution $dist_url $dist_pid" "lading $lading_url $lading_pid"; do
		read -r name url pid <<<"$spec"
		out=$work/$name.strace
		strace -f -c -e trace=fsync,fdatasync -o "$out" -p "$pid" 2>/dev/null &
		sp=$!
		sleep 1
		"$bench" --small --rounds 1 --small-count "$fsync_blobs" "$name=$url" >/dev/null
		kill -INT "$sp"
		wait "$sp" || true
		calls=$(awk '$NF=="fsync" || $NF=="fdatasync" {s+=$4} END {print s+0}' "$out")
		entries+=("\"$name\": $(awk -v c="$calls" -v n="$fsync_blobs" 'BEGIN {printf "%.2f", c/n}')")
	done
	(IFS=,; echo "{${entries[*]}}") >"$work/fsyncs.json"
	fsync_args=(--fsyncs "$work/fsyncs.json")
else
	echo "== strace not found (apt-get install strace) or FSYNC_BLOBS=0: fsyncs not counted" >&2
fi

echo "== benchmark (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
mkdir -p "$results"
"$bench" --data-dir "$work" --ceilings "$work/ceilings.json" "${fsync_args[@]}" \
	--json "$results/latest.json" --markdown "$results/latest.md" "$@" \
	"distribution=$dist_url" "distribution=$dist_pid" "lading=$lading_url" "lading=$lading_pid" |
	tee "$results/latest.txt"
