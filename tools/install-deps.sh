#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages vkmoe needs to build and test.
# Idempotent and silent when everything is already present. Run as root or with sudo available.
set -euo pipefail

PACKAGES=(
  build-essential cmake clang git pkg-config
  libvulkan-dev libvulkan-volk-dev glslang-tools spirv-tools libstb-dev
  mesa-vulkan-drivers vulkan-validationlayers vulkan-tools
  libpcre2-dev libcjson-dev libedit-dev libmicrohttpd-dev curl python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
