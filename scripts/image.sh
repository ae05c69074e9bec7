#!/usr/bin/env bash
# Builds Lading's container image (linux/amd64 and linux/arm64) from this
# checkout and pushes it or writes it to an OCI layout, as docs/deploy.md
# shows: ./scripts/image.sh --push HOST:PORT/lading:TAG | --oci DIR
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/ladingimage "$@"
