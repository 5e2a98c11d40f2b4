#!/usr/bin/env bash
# Durable sends over HTTP against 1, 2 and 3 My-Chat nodes sharing one
# PostgreSQL (store.backend = "postgres"), and the embedded default beside
# them, on this machine: messages/s, latency, and the CPU each process
# spent per message (every node, and PostgreSQL's server processes).
# Prints one Markdown table.
#
# Usage, from the project root after `cargo build --release`:
#   bench/cluster.sh                 # 128 senders, 100 messages each
#   SENDERS=16 MESSAGES=300 bench/cluster.sh
# Needs Debian's postgresql (initdb into a temp dir; synchronous commit and
# fsync on, as in production). All nodes and the database share this
# machine's cores: read the CPU columns, not only the rate.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
load=$root/target/release/mychat-load
server=$root/target/release/mychat
senders=${SENDERS:-128}
messages=${MESSAGES:-100}
[ -x "$load" ] && [ -x "$server" ] || { echo "no release build (cargo build --release first)"; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)
[ -n "$pgbin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)"; exit 1; }
tmp=$(mktemp -d /tmp/mychat-cluster-XXXX)
pids=()
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups "$@"; else "$@"; fi; }
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    as_pg "$pgbin/pg_ctl" -D "$tmp/pg" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$tmp"
as_pg "$pgbin/initdb" -D "$tmp/pg" -A trust -U postgres >/dev/null
port=$((20000 + RANDOM % 20000))
as_pg "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg.log" -w \
    -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB" start >/dev/null

# CPU seconds (user + system) of a process, or of every PostgreSQL server
# process together.
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
pg_cpu() {
    local total=0 master
    master=$(head -1 "$tmp/pg/postmaster.pid")
    for p in "$master" $(pgrep -P "$master"); do
        [ -r "/proc/$p/stat" ] && total=$(awk -v t="$total" '{ printf "%.2f", t + ($14 + $15) / 100 }' "/proc/$p/stat")
    done
    echo "$total"
}

# Starts a node; prints its base URL.
start_node() {
    local name=$1; shift
    mkdir -p "$tmp/$name"
    : > "$tmp/$name.conf"
    env "$@" MYCHAT_REGISTRATION=open MYCHAT_DEMO=false MYCHAT_LOG=warn \
        MYCHAT_LIMITS__SESSIONS_PER_IP_PER_MINUTE=100000 MYCHAT_LIMITS__LOGIN_PER_IP_PER_MINUTE=100000 \
        MYCHAT_LIMITS__VISITOR_MESSAGES_PER_MINUTE=1000000 \
        "$server" serve --listen 127.0.0.1:0 --data-dir "$tmp/$name" --config "$tmp/$name.conf" \
        > "$tmp/$name.out" 2>&1 &
    pids+=($!)
    echo $! > "$tmp/$name.pid"
    for _ in $(seq 1 300); do
        url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$tmp/$name.out" | head -1 || true)
        [ -n "$url" ] && { echo "$url"; return; }
        sleep 0.1
    done
    echo "node $name did not start: $(cat "$tmp/$name.out")" >&2; exit 1
}

echo "| setup | nodes | acknowledged | messages/s | p50 ms | p99 ms | CPU µs/msg per node | PostgreSQL CPU µs/msg |"
echo "|---|--:|--:|--:|--:|--:|---|--:|"
run() { # $1: label, $2: database url or "", $3: nodes
    local label=$1 db=$2 n=$3 urls="" names=()
    for i in $(seq 1 "$n"); do
        local name="$label-$i"
        if [ -n "$db" ]; then
            u=$(start_node "$name" MYCHAT_STORE__BACKEND=postgres MYCHAT_STORE__URL="$db")
        else
            u=$(start_node "$name")
        fi
        urls="${urls:+$urls,}$u"; names+=("$name")
    done
    local before=() pg_before; pg_before=$(pg_cpu)
    for name in "${names[@]}"; do before+=("$(cpu_of "$(cat "$tmp/$name.pid")")"); done
    "$load" --json http --senders "$senders" --messages "$messages" --url "$urls" 2>/dev/null | tail -1 > "$tmp/$label.json"
    local per_node="" k=0
    acked=$(python3 -c "import json;print(json.load(open('$tmp/$label.json'))['acknowledged'])")
    for name in "${names[@]}"; do
        after=$(cpu_of "$(cat "$tmp/$name.pid")")
        per_node="${per_node:+$per_node, }$(python3 -c "print(round(($after - ${before[$k]}) * 1e6 / max($acked, 1)))")"
        k=$((k + 1))
    done
    pg_after=$(pg_cpu)
    pg_us=$( [ -n "$db" ] && python3 -c "print(round(($pg_after - $pg_before) * 1e6 / max($acked, 1)))" || echo "–")
    python3 - "$tmp/$label.json" "$label" "$n" "$per_node" "$pg_us" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latencyMs"]
setup = "embedded" if sys.argv[2] == "embedded" else "PostgreSQL"
print(f"| {setup} | {sys.argv[3]} | {r['acknowledged']} | {r['messagesPerSec']:.0f} | {l['p50']:.2f} | {l['p99']:.2f} | {sys.argv[4]} | {sys.argv[5]} |")
PY
    for name in "${names[@]}"; do kill "$(cat "$tmp/$name.pid")" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

run embedded "" 1
for n in 1 2 3; do
    db="cluster$n"
    psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $db" >/dev/null
    run "pg$n" "postgres://postgres@127.0.0.1:$port/$db" "$n"
done
