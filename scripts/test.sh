#!/usr/bin/env bash
# Runs Lading's whole test suite on a fresh Debian machine with Go: installs
# what the tests need (redis-server, e2fsprogs, gcc for the race detector, systemd for
# systemd-analyze and systemd-sysusers, and the client programs skopeo, podman,
# containerd and docker.io from apt; versitygw as the real S3 server, the clients
# oras, regctl, helm and cosign, and CNCF Distribution's registry, built once into the Go bin directory outside
# the clone), then runs the Go tests, which start and stop those servers
# themselves on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
# Where go install puts binaries: GOBIN, else the first GOPATH's bin.
GOBIN_DIR="$(go env GOBIN)"
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
export PATH="$GOBIN_DIR:$PATH"

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for cmd in redis-server:redis-server skopeo:skopeo podman:podman ctr:containerd dockerd:docker.io mkfs.ext4:e2fsprogs gcc:gcc systemd-analyze:systemd; do
	command -v "${cmd%%:*}" >/dev/null || missing+=("${cmd#*:}")
done
# The race detector needs cgo: a C compiler and the C library's headers.
[ -e /usr/include/stdlib.h ] || missing+=(libc6-dev)
# The packages download and install while the Go tools below compile: on a
# fresh machine each takes minutes, one waiting on the network and disk,
# the other on the CPU.
apt_pid=
if [ ${#missing[@]} -gt 0 ]; then
	echo "test.sh: installing ${missing[*]}" >&2
	# A password, if sudo wants one, is asked for here, not amid the builds.
	[ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null || sudo -v
	(
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
		# The packages start system-wide servers; the tests start their own.
		as_root systemctl stop redis-server docker.socket docker containerd >/dev/null 2>&1 || true
	) &
	apt_pid=$!
	# An early exit (a failed build, ^C) leaves apt to finish rather than
	# kill dpkg mid-install, or a rerun finds its lock held.
	trap 'echo "test.sh: waiting for apt to finish" >&2; wait "$apt_pid" || true' EXIT
fi

# go_tool MODULE PACKAGE VERSION builds PACKAGE of MODULE at VERSION into
# the Go bin directory, unless that exact build is there already.
go_tool() {
	local bin="$GOBIN_DIR/$(basename "$2")"
	if ! go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$1[[:space:]]+$3([[:space:]]|$)"; then
		echo "test.sh: building $2@$3" >&2
		# Without cgo: apt may be putting gcc in place meanwhile, and a
		# build that finds gcc before its C headers fails.
		CGO_ENABLED=0 go install "$2@$3"
	fi
}
# The tools build two at a time (two links of cosign's or helm's size at
# once fit in a few GiB), and the suite's modules download meanwhile: on a
# fresh machine one downloads while another compiles.
tools=(
	"github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw $VERSITYGW_VERSION"
	# The clients of test/clients, at the versions its install hints name.
	"oras.land/oras oras.land/oras/cmd/oras v1.3.6"
	"github.com/regclient/regclient github.com/regclient/regclient/cmd/regctl v0.11.7"
	"helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm v3.22.0"
	"github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign v2.6.5"
	# The registry test/migration imports from.
	"github.com/distribution/distribution/v3 github.com/distribution/distribution/v3/cmd/registry v3.1.1"
)
go mod download &
download_pid=$!
export -f go_tool
export GOBIN_DIR
built=true
# Each line is three words: module, package, version.
printf '%s\n' "${tools[@]}" | xargs -P 2 -L 1 bash -c 'go_tool "$@"' _ || built=false
wait "$download_pid" || built=false
$built || { echo "test.sh: building the test tools or downloading modules failed" >&2; exit 1; }
if [ -n "$apt_pid" ]; then
	trap - EXIT
	if ! wait "$apt_pid"; then
		echo "test.sh: installing ${missing[*]} failed" >&2
		exit 1
	fi
fi

# Fuzz targets run briefly each, as real fuzzing, after the ordinary tests.
# The budget is a count of executions (about 10 s each here), not a
# duration: Go 1.26's fuzzer can fail a target with a bare "context
# deadline exceeded" when a duration runs out under load (go.dev/issue/75804).
FUZZTIME="${LADING_TEST_FUZZTIME:-150000x}"

go vet ./...
# A hung test must be reported (with every goroutine's stack) well inside
# CI's 30 minutes, after the installs and builds before it; the slowest
# package takes under a minute here.
go test -count=1 -timeout 10m "$@" ./...
# The packages again under the race detector, but for test/, whose suites
# drive built servers from outside and take longest (about two and a half
# minutes here, two packages at a time).
race_pkgs=$(go list ./... | grep -v '/test/')
# shellcheck disable=SC2086 # one package per word
CGO_ENABLED=1 go test -race -count=1 -timeout 15m "$@" $race_pkgs

while read -r pkg target; do
	[ -n "$pkg" ] || continue
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
	dir="./$(dirname "${f#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | sed "s|^|$dir |"
done)
