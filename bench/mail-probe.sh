#!/bin/bash
# One tidings node relaying smtp-source's load into smtp-sink, with the node's
# CPU per message by thread and the machine's load: where a relayed message's
# time goes (bench/RESULTS-2026-11-26d.md). Not a comparison: mail-relay.js
# runs tidings and Postfix side by side.
#   bash bench/mail-probe.sh [DIST=dist] [new|reuse] [COUNT=8000] [extra TOML line]
# new: a connection per message (smtp-source's default); reuse: smtp-source -d.
# The rate printed is acceptance at smtp-source (8 sessions, 1 KB), after
# 2,000 messages to warm.
set -euo pipefail
DIST=${1:-dist}; MODE=${2:-new}; N=${3:-8000}; EXTRA=${4:-}
PATH="$PATH:/usr/sbin:/sbin"
dir=$(mktemp -d /var/tmp/tidings-mail-probe-XXXXXX)
sink_port=40225; smtp_port=40221
printf '[smtp]\nhostname = "tidings.bench.test"\n%b\n[[route]]\ndomain = "example.org"\nnext_hop = "127.0.0.1:%s"\n' "$EXTRA" "$sink_port" > "$dir/cfg.toml"
user=(); [ "$(id -u)" = 0 ] && user=(-u postfix)
smtp-sink "${user[@]}" -c "127.0.0.1:$sink_port" 1000 > /dev/null 2>&1 & sink=$!
: > "$dir/node.out"
node --max-semi-space-size=32 --no-memory-reducer "$DIST/cli/tidings.js" serve -c "$dir/cfg.toml" --data "$dir/data" --nntp 127.0.0.1:0 --smtp "127.0.0.1:$smtp_port" --http off --log-level warn > "$dir/node.out" 2>&1 & pid=$!
trap 'kill $pid $sink 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q "tidings ready" "$dir/node.out" && break; sleep 0.1; done
d=(); [ "$MODE" = reuse ] && d=(-d)
src() { smtp-source "${d[@]}" -s ${SESSIONS:-8} -m "$1" -l 1024 -M source.bench.test -f from@example.net -t to@example.org "127.0.0.1:$smtp_port"; }
src 2000; sleep 1
snap() { for t in /proc/$pid/task/*; do echo "$(basename "$t") $(awk '{print $14+$15}' "$t/stat")"; done | sort; }
snap > "$dir/a"; m0=$(head -1 /proc/stat); s=$(date +%s.%N)
src "$N"
e=$(date +%s.%N); snap > "$dir/b"; m1=$(head -1 /proc/stat)
el=$(echo "$e - $s" | bc)
echo "$DIST $MODE: $(echo "$N / $el" | bc) msg/s accepted in $el s"
join "$dir/a" "$dir/b" | awk -v el="$el" -v n="$N" -v main="$pid" '{d=$3-$2; if (d>0) printf "  thread %s%s %d%% %d us/msg\n", $1, ($1==main?" (main)":""), d/el, d*10000/n}'
echo "$m0 $m1" | awk -v el="$el" '{b0=$2+$3+$4+$7+$8+$9; b1=$13+$14+$15+$18+$19+$20; printf "  machine busy %d%% of 200%%\n", (b1-b0)/el}'
