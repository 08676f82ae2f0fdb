#!/bin/bash
# One tidings node relaying smtp-source's load into smtp-sink, with the node's
# CPU per message by thread and the machine's load: where a relayed message's
# time goes (bench/RESULTS-2026-11-26d.md, -26e.md). Not a comparison:
# mail-relay.js runs tidings and Postfix side by side.
#   bash bench/mail-probe.sh [DIST=dist] [new|reuse] [COUNT=8000] [extra TOML line]
# new: a connection per message (smtp-source's default); reuse: smtp-source -d.
# The rate printed is acceptance at smtp-source (1 KB), after 2,000 messages
# to warm. The node runs with DIST's own V8 flags (cli/node-flags.js).
# Environment:
#   SESSIONS=8     smtp-source's sessions
#   RUNS=1         timed runs in a row, each of COUNT messages
#   IDLE=1         seconds the node sits idle between the warm-up and the first timed run
#   HOP_DOWN=1     the route's next hop is a port nothing listens on: nothing is delivered
#   NODE_ARGS=...  more options for the node's node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
#                  (the profile is written when the node ends) or "--memory-reducer"
set -euo pipefail
DIST=${1:-dist}; MODE=${2:-new}; N=${3:-8000}; EXTRA=${4:-}
PATH="$PATH:/usr/sbin:/sbin"
dir=$(mktemp -d /var/tmp/tidings-mail-probe-XXXXXX)
sink_port=40225; smtp_port=40221
hop_port=$sink_port; [ "${HOP_DOWN:-0}" = 1 ] && hop_port=40299
printf '[smtp]\nhostname = "tidings.bench.test"\n%b\n[[route]]\ndomain = "example.org"\nnext_hop = "127.0.0.1:%s"\n' "$EXTRA" "$hop_port" > "$dir/cfg.toml"
user=(); [ "$(id -u)" = 0 ] && user=(-u postfix)
smtp-sink "${user[@]}" -c "127.0.0.1:$sink_port" 1000 > /dev/null 2>&1 & sink=$!
: > "$dir/node.out"
dist_abs=$(cd "$DIST" && pwd)
read -ra flags <<< "$(node -e 'import(process.argv[1]).then((m) => console.log(m.NODE_FLAGS.join(" ")))' "$dist_abs/cli/node-flags.js")"
read -ra more <<< "${NODE_ARGS:-}"
node "${flags[@]}" "${more[@]}" "$DIST/cli/tidings.js" serve -c "$dir/cfg.toml" --data "$dir/data" --nntp 127.0.0.1:0 --smtp "127.0.0.1:$smtp_port" --http off --log-level warn > "$dir/node.out" 2>&1 & pid=$!
# SIGINT: the node ends as it would by hand, and writes a --cpu-prof profile
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; kill $sink 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q "tidings ready" "$dir/node.out" && break; sleep 0.1; done
d=(); [ "$MODE" = reuse ] && d=(-d)
src() { smtp-source "${d[@]}" -s "${SESSIONS:-8}" -m "$1" -l 1024 -M source.bench.test -f from@example.net -t to@example.org "127.0.0.1:$smtp_port"; }
src 2000; sleep "${IDLE:-1}"
snap() { for t in /proc/$pid/task/*; do echo "$(basename "$t") $(awk '{print $14+$15}' "$t/stat")"; done | sort; }
times() { awk '{print $14, $15}' "/proc/$pid/stat"; }
echo "$DIST $MODE, node flags: ${flags[*]} ${more[*]}"
for _ in $(seq "${RUNS:-1}"); do
  snap > "$dir/a"; read -r u0 s0 <<< "$(times)"; m0=$(head -1 /proc/stat); s=$(date +%s.%N)
  src "$N"
  e=$(date +%s.%N); snap > "$dir/b"; read -r u1 s1 <<< "$(times)"; m1=$(head -1 /proc/stat)
  el=$(echo "$e - $s" | bc)
  echo "$DIST $MODE: $(echo "$N / $el" | bc) msg/s accepted in $el s; node user $(( (u1 - u0) * 10000 / N )) us/msg, system $(( (s1 - s0) * 10000 / N )) us/msg"
  join "$dir/a" "$dir/b" | awk -v el="$el" -v n="$N" -v main="$pid" '{d=$3-$2; if (d>0) printf "  thread %s%s %d%% %d us/msg\n", $1, ($1==main?" (main)":""), d/el, d*10000/n}'
  echo "$m0 $m1" | awk -v el="$el" '{b0=$2+$3+$4+$7+$8+$9; b1=$13+$14+$15+$18+$19+$20; printf "  machine busy %d%% of 200%%\n", (b1-b0)/el}'
done
