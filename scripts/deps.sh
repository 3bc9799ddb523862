#!/usr/bin/env bash
# Install every build and test dependency of secretproxy with apt.
# Idempotent: does nothing when all packages are present. Works as root or
# through sudo. Node.js/npm come with the machine image and are not touched.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git clang-format clang
  libevent-dev libmbedtls-dev libhiredis-dev libcurl4-openssl-dev libpcre2-dev
  libjansson-dev libcmocka-dev
  redis-server redis-tools nginx-light wrk curl ca-certificates openssl
  python3 python3-requests python3-boto3 python3-botocore
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
