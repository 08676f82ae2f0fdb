#!/usr/bin/env bash
# Makes the machine ready for the newsreader test: Debian's tin (a real
# newsreader) and tmux (to drive it the way a person would, by keys).
# tin will not post unless it can name a mail domain; a container's hostname
# often has none, so /etc/mailname (Debian's file for it) is written when absent.
set -euo pipefail
if ! command -v tin >/dev/null || ! command -v tmux >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "newsreader-setup: tin or tmux missing and we are not root" >&2; exit 3; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -q tin tmux >/dev/null
fi
if [ ! -s /etc/mailname ] && [ "$(id -u)" = 0 ]; then echo "tidings.test" > /etc/mailname; fi
command -v tin >/dev/null && command -v tmux >/dev/null
