#!/bin/sh
# Builds mychat as a statically linked x86_64 musl executable:
#   target/x86_64-unknown-linux-musl/release/mychat
# and prints that path on its last line.
#
# TLS is rustls with one crypto provider, ring (pure Rust and assembly, no
# cmake). musl's malloc slows the server down under concurrent load, so musl
# builds use mimalloc (figures in packaging/README.md).
set -eu
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi

# ring and mimalloc compile C for musl: musl-gcc (Debian package musl-tools).
if ! command -v musl-gcc >/dev/null 2>&1; then
    echo "build-static: musl-gcc is missing; install the musl-tools package" >&2
    exit 1
fi
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"

# Symbols are stripped: the package ships the executable, not its debug data.
CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$TARGET" --bin mychat

BIN="target/$TARGET/release/mychat"
# A static executable asks for no program interpreter (no ld.so).
if readelf -lW "$BIN" | grep -q 'INTERP'; then
    echo "build-static: $BIN is dynamically linked" >&2
    exit 1
fi
echo "$BIN"
