#!/usr/bin/env bash
# Makes the machine ready for the web reader's tests: Debian's text browsers
# w3m and lynx (the pages must read well without JavaScript), and Debian's
# Chromium, driven by playwright-core (an npm devDependency), for the live
# updates a person sees in a real browser.
set -euo pipefail
need=()
command -v w3m >/dev/null || need+=(w3m)
command -v lynx >/dev/null || need+=(lynx)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "web-setup: ${need[*]} missing and we are not root" >&2; exit 3; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -q "${need[@]}" >/dev/null
fi
command -v w3m >/dev/null && command -v lynx >/dev/null && command -v chromium >/dev/null
