#!/usr/bin/env bash
# Release build of the three binaries, installed under PREFIX (default /usr/local).
# The Dockerfile runs exactly this; tests/run.sh runs it too, so CI proves it works.
#   deploy/build.sh [PREFIX]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${1:-/usr/local}
BUILD=${DXSYNC_RELEASE_BUILD:-$ROOT/build-release}
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDXSYNC_TESTS=OFF \
  -DDXSYNC_WERROR=ON -DCMAKE_INSTALL_PREFIX="$PREFIX" >/dev/null
cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)"
cmake --install "$BUILD" --strip >/dev/null
for b in dxsync-producer dxsync-consumer dxsync-notifier; do "$PREFIX/bin/$b" --version; done
