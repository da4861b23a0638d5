#!/usr/bin/env bash
# Builds a statically linked ryx-node (glibc, x86_64) and, with --image,
# a FROM-scratch container image around it. No network access is needed
# beyond what `cargo build` already has (crates are vendored/cached).
#
#   scripts/build-static.sh                  # -> dist/ryx-node (static)
#   scripts/build-static.sh --image [TAG]    # also: docker image TAG (default ryx-node:latest)
#
# The binary is built with `-C target-feature=+crt-static` for the explicit
# target x86_64-unknown-linux-gnu, so the flag reaches only target crates
# (build scripts and proc-macros are still built dynamically for the host).
# Environment: CARGO_TARGET_DIR (default: target), OUT_DIR (default: dist).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="${OUT_DIR:-dist}"
IMAGE=""
if [[ "${1:-}" == "--image" ]]; then
    IMAGE="${2:-ryx-node:latest}"
elif [[ -n "${1:-}" ]]; then
    echo "usage: $0 [--image [TAG]]" >&2
    exit 2
fi

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release -p ryx-node --bin ryx-node --target "$TARGET" --target-dir "$TARGET_DIR"

BIN="$TARGET_DIR/$TARGET/release/ryx-node"
mkdir -p "$OUT"
cp "$BIN" "$OUT/ryx-node"
strip "$OUT/ryx-node" 2>/dev/null || true

# Refuse to hand out a binary that is not static.
if ldd "$OUT/ryx-node" 2>&1 | grep -Eq "not a dynamic executable|statically linked"; then
    echo "static binary: $OUT/ryx-node ($(du -h "$OUT/ryx-node" | cut -f1))"
else
    echo "error: $OUT/ryx-node is dynamically linked:" >&2
    ldd "$OUT/ryx-node" >&2
    exit 1
fi

if [[ -n "$IMAGE" ]]; then
    # The build context holds only the binary and the Dockerfile: nothing
    # else can end up in the image, and no registry is contacted (scratch).
    CTX="$(mktemp -d)"
    trap 'rm -rf "$CTX"' EXIT
    cp "$OUT/ryx-node" "$CTX/ryx-node"
    cp Dockerfile "$CTX/Dockerfile"
    docker build -q -t "$IMAGE" "$CTX"
    echo "image: $IMAGE"
fi
