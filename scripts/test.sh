#!/usr/bin/env bash
# Runs Lading's whole test suite on a fresh Debian machine with Go: installs
# what the tests need (redis-server from apt, versitygw as the real S3 server,
# built once into the Go bin directory outside the clone), then runs the Go
# tests, which start and stop those servers themselves on 127.0.0.1.
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

if ! command -v redis-server >/dev/null; then
	echo "test.sh: installing redis-server" >&2
	as_root apt-get update -qq
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
	# The package starts a system-wide server; the tests start their own.
	as_root systemctl stop redis-server >/dev/null 2>&1 || true
fi

if ! go version -m "$GOBIN_DIR/versitygw" 2>/dev/null | grep -Eq "^\s+mod\s+github.com/versity/versitygw\s+${VERSITYGW_VERSION}\b"; then
	echo "test.sh: building versitygw ${VERSITYGW_VERSION}" >&2
	go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}"
fi

# Fuzz targets run briefly each, as real fuzzing, after the ordinary tests.
# The budget is a count of executions (about 10 s each here), not a
# duration: Go 1.26's fuzzer can fail a target with a bare "context
# deadline exceeded" when a duration runs out under load (go.dev/issue/75804).
FUZZTIME="${LADING_TEST_FUZZTIME:-150000x}"

go vet ./...
go test -count=1 -timeout 25m "$@" ./...

while read -r pkg target; do
	[ -n "$pkg" ] || continue
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
	dir="./$(dirname "${f#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | sed "s|^|$dir |"
done)
