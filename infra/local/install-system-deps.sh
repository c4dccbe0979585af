#!/usr/bin/env bash
# Debian packages the local stack and the browser tests need (Maven fetches the Kafka broker and Spark's Kafka
# connector from Maven Central; see `tickflow stack jars`). Installs the missing ones when run as root,
# otherwise prints the exact command to run. Idempotent and quick when everything is present.
set -euo pipefail
packages=(postgresql-15 redis-server victoria-metrics chromium chromium-driver maven openjdk-17-jre-headless)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages. Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
