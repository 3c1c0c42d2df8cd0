#!/bin/sh
# Installs the Debian 12 packages qsim needs (run as root), and Node.js with
# npm for qsim-studio's front end when the machine has none.
set -e
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
packages="$(cat scripts/debian-packages.txt)"
if ! command -v npm >/dev/null 2>&1; then
  packages="$packages nodejs npm"
fi
if ! dpkg -s $packages >/dev/null 2>&1; then
  apt-get update
  apt-get install -y --no-install-recommends $packages
fi
