#!/usr/bin/env bash
# A private Postfix (Debian's, 3.7) on a loopback port, for interop tests and
# benchmarks. It never reads or touches /etc/postfix/main.cf nor the system's
# queue: everything lives in DIR, and it runs with `postfix -c DIR/etc`.
#   postfix-sandbox.sh start DIR PORT RELAYHOST:PORT [MYHOSTNAME] [name=value ...]
#        a relay on 127.0.0.1:PORT that takes mail for any domain from
#        127.0.0.0/8 and relays all of it to RELAYHOST:PORT (no DNS); Postfix's
#        stock behaviour otherwise (its queue fsyncs as shipped); log in DIR/maillog.
#        name=value pairs are further main.cf settings, e.g. for retry tests
#        minimal_backoff_time=2s maximal_backoff_time=4s queue_run_delay=1s
#   postfix-sandbox.sh stop DIR            stop it (waits for the master to exit)
#   postfix-sandbox.sh env DIR             print the -c argument for Postfix's tools (postqueue, postcat, ...)
# Needs root (Postfix's master starts as root and its queue belongs to the
# postfix user) and Postfix installed (test/interop/mail-setup.sh).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

cmd=${1:-}; shift || true

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "postfix-sandbox: Postfix's master must start as root" >&2; exit 3; fi
  if ! command -v postfix >/dev/null; then echo "postfix-sandbox: postfix is not installed (run mail-setup.sh)" >&2; exit 3; fi
}

# Reads the SMTP greeting on 127.0.0.1:$1; succeeds on a 220.
greets() {
  local line=""
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  IFS= read -r -t 2 line <&3 || true
  printf 'QUIT\r\n' >&3 2>/dev/null || true
  exec 3<&- 3>&-
  [[ $line == 220* ]]
}

start() {
  local dir=$1 port=$2 relay=$3 name=postfix-sandbox.tidings.test
  shift 3
  if [ $# -gt 0 ] && [[ $1 != *=* ]]; then name=$1; shift; fi
  local extra=("$@") kv
  need_root
  case "$port" in ''|*[!0-9]*) echo "postfix-sandbox: PORT must be a number" >&2; return 2 ;; esac
  local rhost=${relay%:*} rport=${relay##*:}
  case "$rport" in ''|*[!0-9]*) echo "postfix-sandbox: RELAYHOST:PORT needs a port" >&2; return 2 ;; esac
  rhost=${rhost#[}; rhost=${rhost%]}
  stop "$dir" 2>/dev/null || true
  rm -rf "$dir"; mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Postfix's daemons run as the postfix user and must reach the queue inside DIR
  # (mkdtemp makes 0700 folders).
  chmod 755 "$dir"
  # the queue belongs to root (Postfix makes its folders in it), data_directory to postfix
  mkdir -p "$dir/etc" "$dir/queue"
  install -d -o postfix -g root -m 700 "$dir/data"
  : > "$dir/maillog"

  cat > "$dir/etc/main.cf" <<MC
# written by postfix-sandbox.sh; everything else is Postfix's default
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
myhostname = $name
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# nothing is delivered here: every domain, \$myhostname included, goes to the relay host
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [$rhost]:$rport
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# no DNS: the relay host is an address; the client's name is not looked up either
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtputf8_enable = yes
biff = no
append_dot_mydomain = no
smtpd_banner = \$myhostname ESMTP Postfix (tidings sandbox)
# Postfix 3.4+ logging without syslog, through the postlog service in master.cf
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
MC

  for kv in "${extra[@]}"; do
    [[ $kv == *=* ]] || { echo "postfix-sandbox: '$kv' is not name=value" >&2; return 2; }
    postconf -c "$dir/etc" -e "$kv"
  done

  # Debian's master.cf, with the smtp listener moved to 127.0.0.1:PORT and no
  # chroot (a chroot would need copies of /etc files inside the queue).
  awk -v listen="127.0.0.1:$port" '
    /^#/ || /^[ \t]/ || NF < 8 { print; next }
    $1 == "smtp" && $2 == "inet" { $1 = listen }
    { $5 = "n"; print }
  ' /etc/postfix/master.cf > "$dir/etc/master.cf"
  grep -q "^127.0.0.1:$port[[:space:]]" "$dir/etc/master.cf" || { echo "postfix-sandbox: no smtp inet line in /etc/postfix/master.cf" >&2; return 1; }
  grep -q "^postlog[[:space:]]" "$dir/etc/master.cf" || echo "postlog   unix-dgram n  -       n       -       1       postlogd" >> "$dir/etc/master.cf"

  # `postfix start` checks the configuration and makes the queue's folders with
  # the owners and modes Postfix wants (post-install create-missing); a separate
  # `postfix check` would only repeat that (about a second). Not `set-permissions`:
  # it also resets the modes of the system's Postfix files.
  if ! postfix -c "$dir/etc" start >"$dir/start.out" 2>&1; then
    echo "postfix-sandbox: postfix start failed:" >&2; cat "$dir/start.out" "$dir/maillog" >&2; return 1
  fi
  for _ in $(seq 1 100); do
    if greets "$port" 2>/dev/null; then
      echo "postfix-sandbox: Postfix on 127.0.0.1:$port relaying to [$rhost]:$rport, postfix -c $dir/etc, log $dir/maillog"
      return 0
    fi
    sleep 0.1
  done
  echo "postfix-sandbox: Postfix did not answer 220 on 127.0.0.1:$port" >&2
  cat "$dir/start.out" "$dir/maillog" >&2 || true
  stop "$dir" || true
  return 1
}

master_pid() { # DIR -> the master's pid, if its pid file names a live process
  local f="$1/queue/pid/master.pid" pid
  [ -f "$f" ] || return 1
  pid=$(tr -dc 0-9 < "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop() {
  local dir=$1
  [ -f "$dir/etc/main.cf" ] || return 0
  dir=$(cd "$dir" && pwd)
  local pid; pid=$(master_pid "$dir") || return 0
  # what `postfix stop` does (SIGTERM to the master, which ends its children),
  # without its one-second sleeps between checks
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  # the master did not exit in 5 s: end it (its children exit when it is gone)
  kill -9 "$pid" 2>/dev/null || true
  return 0
}

case "$cmd" in
  start) [ $# -ge 3 ] || { sed -n '2,15p' "$0"; exit 2; }; start "$@" ;;
  stop) [ $# -ge 1 ] || { sed -n '2,15p' "$0"; exit 2; }; stop "$@" ;;
  env) echo "-c $(cd "$1" && pwd)/etc" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
