#!/usr/bin/env bash
# Makes sure Dawn finds a WebGPU adapter. On Debian/Ubuntu as root it installs Mesa's software
# Vulkan driver (lavapipe) when none answers; elsewhere it says exactly what to install.
set -uo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR" 2>/dev/null || true

probe() { node scripts/probe-adapter.mjs >/dev/null 2>&1; }
if probe; then exit 0; fi

say_what_to_install() {
  cat >&2 <<'MSG'
[setup] No WebGPU adapter answered. Dawn needs a Vulkan driver:
  - with an NVIDIA/AMD/Intel GPU: install its Vulkan driver and the loader (libvulkan1);
  - without a GPU (Debian 12): as root, enable bookworm-backports and run
      apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1
    (bookworm's own mesa-vulkan-drivers 22.x is rejected by Dawn; 25.x works);
  - Ubuntu 24.04+: apt-get install mesa-vulkan-drivers libvulkan1
Then run the command again.
MSG
  exit 1
}

[ "$(uname -s)" = Linux ] && [ -r /etc/os-release ] && command -v apt-get >/dev/null || say_what_to_install
[ "$(id -u)" = 0 ] || say_what_to_install
. /etc/os-release
echo "[setup] no adapter found: installing Mesa's software Vulkan driver (lavapipe) for $PRETTY_NAME" >&2
export DEBIAN_FRONTEND=noninteractive
target=()
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/lpo-wgsl-backports.sources
  fi
  target=(-t bookworm-backports)
fi
apt-get update -qq >&2 || true
apt-get install -y -qq "${target[@]}" mesa-vulkan-drivers libvulkan1 >&2 || say_what_to_install
probe || { node scripts/probe-adapter.mjs >&2; say_what_to_install; }
echo "[setup] lavapipe installed; adapter found" >&2
