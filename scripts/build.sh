#!/bin/sh
# Configures (once) and builds qsim into build/ with ccache, then
# qsim-studio's front end (npm packages from studio/package-lock.json, Vite)
# into studio/web/dist.
set -e
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j "$(nproc)"
cd studio
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` with the lock file rather than `npm ci`: registries that
  # lack other platforms' optional packages (rollup's) make `npm ci` refuse.
  npm install --no-save --no-audit --no-fund
fi
npm run build
