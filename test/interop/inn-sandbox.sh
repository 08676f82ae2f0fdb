#!/usr/bin/env bash
# A private INN 2.7 instance on a loopback port, for interop tests and benchmarks.
#   inn-sandbox.sh ensure                      install Debian's inn2 (and postfix, which it needs) if missing
#   inn-sandbox.sh start DIR PORT [HOST:PORT]  run innd on 127.0.0.1:PORT with all state in DIR;
#                                              with HOST:PORT, innfeed feeds everything it accepts there;
#                                              INN_HISTORY_SIZE=N sizes the empty history for N articles
#   inn-sandbox.sh stop DIR                    stop it
#   inn-sandbox.sh feed DIR HOST:PORT          send every article in DIR's spool with INN's innxmit
#   inn-sandbox.sh env DIR                     print the INNCONF line for running INN's tools by hand
# Everything binds to 127.0.0.1 only.
set -euo pipefail

NEWSBIN=/usr/lib/news/bin
cmd=${1:-}; shift || true

ensure() {
  if [ -x "$NEWSBIN/innd" ] && dpkg -s inn2 2>/dev/null | grep -q "Status: install ok installed"; then return 0; fi
  if [ "$(id -u)" != 0 ]; then echo "inn-sandbox: inn2 is not installed and we are not root" >&2; return 3; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  echo "postfix postfix/mailname string localhost" | debconf-set-selections
  apt-get update -qq >/dev/null
  # inn2's post-install stops unless inn.conf names a domain and a path host
  # that make valid Message-IDs; a container's hostname often does not.
  mkdir -p /etc/news
  if [ ! -f /etc/news/inn.conf ]; then
    apt-get install -y -q postfix >/dev/null
    apt-get install -y -q inn2 >/dev/null 2>&1 || true
  else
    apt-get install -y -q postfix inn2 >/dev/null 2>&1 || true
  fi
  sed -i -E 's/^#?[[:space:]]*domain:.*/domain:                      test.invalid/; s/^#?[[:space:]]*pathhost:.*/pathhost:                    inn.test/' /etc/news/inn.conf
  dpkg --configure -a >/dev/null
  [ -x "$NEWSBIN/innd" ]
}

conf() { # DIR
  echo "$1/etc/inn.conf"
}

start() {
  local dir=$1 port=$2 peer=${3:-}
  ensure
  rm -rf "$dir"; mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir"/{etc,db,log,run,tmp} "$dir"/spool/{articles,overview,outgoing,archive,incoming/tmp,innfeed}
  cp -r /etc/news/. "$dir/etc/"
  local c; c=$(conf "$dir")
  sed -i -E \
    -e "s#^pathetc:.*#pathetc: $dir/etc#" -e "s#^pathdb:.*#pathdb: $dir/db#" -e "s#^pathspool:.*#pathspool: $dir/spool#" \
    -e "s#^patharticles:.*#patharticles: $dir/spool/articles#" -e "s#^pathoverview:.*#pathoverview: $dir/spool/overview#" \
    -e "s#^pathoutgoing:.*#pathoutgoing: $dir/spool/outgoing#" -e "s#^pathincoming:.*#pathincoming: $dir/spool/incoming#" \
    -e "s#^patharchive:.*#patharchive: $dir/spool/archive#" -e "s#^pathtmp:.*#pathtmp: $dir/tmp#" \
    -e "s#^pathlog:.*#pathlog: $dir/log#" -e "s#^pathrun:.*#pathrun: $dir/run#" -e "s#^pathfilter:.*#pathfilter: $dir/etc/filter#" \
    -e "s#^port:.*#port: $port#" -e "s#^pathhost:.*#pathhost: inn.test#" -e "s#^\#?[[:space:]]*domain:.*#domain: test.invalid#" \
    -e "s#^\#?[[:space:]]*bindaddress:.*#bindaddress: 127.0.0.1#" \
    -e "s#^\#?[[:space:]]*bindaddress6:.*#bindaddress6: \"::1\"#" \
    "$c"
  grep -q "^bindaddress:" "$c" || echo "bindaddress: 127.0.0.1" >> "$c"
  # groups the tests use
  : > "$dir/db/active"; : > "$dir/db/active.times"; : > "$dir/db/newsgroups"
  for g in control control.cancel control.newgroup control.rmgroup junk local.general local.test tidings.announce; do
    echo "$g 0000000000 0000000001 y" >> "$dir/db/active"
    echo "$g $(date +%s) inn-sandbox" >> "$dir/db/active.times"
    printf '%s\t%s\n' "$g" "sandbox group" >> "$dir/db/newsgroups"
  done
  # feeds: everything to the peer through innfeed, if asked
  cat > "$dir/etc/newsfeeds" <<NF
ME:*,!junk,!control*/!local::
xmit/xmit.invalid:*,!junk:Tf,Wnm:
NF
  if [ -n "$peer" ]; then
    local phost=${peer%:*} pport=${peer##*:}
    cat >> "$dir/etc/newsfeeds" <<NF
tidings/tidings.test,tidings.local:*,!junk:Tm:innfeed!
innfeed!:!*:Tc,Wnm*:$NEWSBIN/innfeed
NF
    cat > "$dir/etc/innfeed.conf" <<IF
backlog-directory: $dir/spool/innfeed
pid-file: $dir/run/innfeed.pid
log-file: $dir/log/innfeed.log
status-file: $dir/log/innfeed.status
debug-level: 0
backlog-newfile-period: 5
backlog-ckpt-period: 2
use-mmap: false
dns-retry: 5
dns-expire: 86400
gen-html: false
connection-stats: false
initial-reconnect-time: 1
max-reconnect-time: 10
article-timeout: 600
response-timeout: 300
initial-connections: 1
max-connections: 2
streaming: true
port-number: 119
peer tidings {
  ip-name: $phost
  port-number: $pport
}
IF
  fi
  cat > "$dir/etc/incoming.conf" <<IC
streaming: true
max-connections: 50
peer ME {
  hostname: "localhost, 127.0.0.1, ::1"
}
IC
  cat > "$dir/etc/readers.conf" <<RC
auth "local" {
  hosts: "localhost, 127.0.0.1, ::1, stdin"
  default: "<local>"
}
access "local" {
  users: "<local>"
  newsgroups: "*"
  access: RPA
}
RC
  touch "$dir/db/history"
  chown -R news:news "$dir"
  # An empty history gets dbz's default table (10,000,000 slots, 140 MB of
  # sparse mmap'ed .index/.hash); INN_HISTORY_SIZE=N sizes it for about N
  # articles instead (makedbz -s N), as a server expecting N articles would.
  local hsize=${INN_HISTORY_SIZE:-}
  if [ -n "$hsize" ]; then
    case "$hsize" in *[!0-9]*) echo "inn-sandbox: INN_HISTORY_SIZE must be a number of articles" >&2; return 2 ;; esac
    su news -s /bin/sh -c "INNCONF=$c $NEWSBIN/makedbz -i -o -s $hsize" >/dev/null
  else
    su news -s /bin/sh -c "INNCONF=$c $NEWSBIN/makedbz -i -o" >/dev/null
  fi
  # innd -f stays in the foreground; run it in the background ourselves
  INNCONF=$c nohup "$NEWSBIN/innd" -f >"$dir/log/innd.stdout" 2>&1 &
  echo $! > "$dir/run/sandbox.pid"
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "inn-sandbox: innd on 127.0.0.1:$port, INNCONF=$c"
      return 0
    fi
    sleep 0.1
  done
  echo "inn-sandbox: innd did not start" >&2
  cat "$dir/log/innd.stdout" "$dir"/log/*.err 2>/dev/null >&2 || true
  return 1
}

stop() {
  local dir=$1 c; c=$(conf "$dir")
  [ -f "$c" ] || return 0
  INNCONF=$c "$NEWSBIN/ctlinnd" -t 5 shutdown "sandbox stop" >/dev/null 2>&1 || true
  if [ -f "$dir/run/sandbox.pid" ]; then
    local pid; pid=$(cat "$dir/run/sandbox.pid")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  [ -f "$dir/run/innfeed.pid" ] && kill -9 "$(cat "$dir/run/innfeed.pid")" 2>/dev/null || true
  pkill -9 -f "innfeed.*$dir" 2>/dev/null || true
  return 0
}

feed() {
  local dir=$1 target=$2 c; c=$(conf "$dir")
  local host=${target%:*} port=${target##*:}
  local batch="$dir/tmp/innxmit.batch"
  # the "xmit" site in newsfeeds gets "token Message-ID" for every accepted article
  INNCONF=$c "$NEWSBIN/ctlinnd" -t 5 flush xmit >/dev/null
  cp "$dir/spool/outgoing/xmit" "$batch"
  chown news:news "$batch"
  su news -s /bin/sh -c "INNCONF=$c $NEWSBIN/innxmit -P $port -t 30 $host $batch" 
}

case "$cmd" in
  ensure) ensure ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  feed) feed "$@" ;;
  env) echo "INNCONF=$(conf "$1")" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
