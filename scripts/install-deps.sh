#!/bin/sh
# Installs the Debian 12 packages qsim needs (run as root).
set -e
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s $(cat scripts/debian-packages.txt) >/dev/null 2>&1; then
  apt-get update
  apt-get install -y --no-install-recommends $(cat scripts/debian-packages.txt)
fi
