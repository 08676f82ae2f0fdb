#!/usr/bin/env bash
# Makes the machine ready for the mail tests: Debian's Postfix (a real MTA, run
# privately by postfix-sandbox.sh, with its smtp-source and smtp-sink tools)
# and swaks (a scriptable SMTP client). Installing Postfix must not configure
# or start the system's own instance: debconf is told "No configuration",
# and policy-rc.d keeps the package scripts from starting the service.
set -euo pipefail
have() { command -v swaks >/dev/null && command -v postfix >/dev/null && command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null; }
export PATH="$PATH:/usr/sbin:/sbin"
if ! have; then
  if [ "$(id -u)" != 0 ]; then echo "mail-setup: postfix, swaks, smtp-source or smtp-sink missing and we are not root" >&2; exit 3; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string tidings.test" | debconf-set-selections
  # invoke-rc.d asks policy-rc.d; exit 101 means "do not start services"
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
  fi
  trap 'if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
  apt-get update -qq >/dev/null
  apt-get install -y -q postfix swaks >/dev/null
fi
have
