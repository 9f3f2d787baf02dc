#!/usr/bin/env bash
# npm test's pretest: the system programs the suite runs for real, from Debian's packages.
# openssl makes the TLS tests' certificates; redis-server and redis-cli back the rate-limit tests;
# systemd-analyze verifies the systemd unit in deploy/.
set -euo pipefail
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tollgate tests need: ${missing[*]} (Debian packages). Install them, e.g. sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package starts a redis-server service on 6379; the tests start their own on free ports.
