#!/usr/bin/env bash
# Side by side, in one run on this machine: durable chat sends in
# PostgreSQL (pgbench, synchronous commit, the same work per message) and
# in My-Chat (its store alone and its HTTP API); idle WebSocket memory in
# My-Chat, Node.js `ws` and socket.io; the widget's first download.
# Prints one Markdown table; the last line says which goals hold, and the
# exit status is 0 only when all of them do.
#
# Usage, from the project root after `cargo build --release`:
#   bench/compare.sh            # everything (about 6 minutes)
#   SKIP_IDLE=1 bench/compare.sh  # the durable sends only (about 2 minutes)
# Needs PostgreSQL (`apt-get install postgresql`) for its side and Node.js
# with npm for the socket peers (`npm ci` runs in bench/peer-ws the first
# time); a side whose tools are missing is reported as not measured.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
load=$root/target/release/mychat-load
server=$root/target/release/mychat
[ -x "$load" ] && [ -x "$server" ] || { echo "no release build in $root/target/release (cargo build --release first)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
note() { printf '%s\n' "$*" >&2; }

# PostgreSQL: its best of 16, 32 and 128 clients, and one client.
pg_best=0 pg_best_clients=- pg_one=0
if ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 && command -v pgbench >/dev/null; then
    for c in 1 16 32 128; do
        note "PostgreSQL, $c client(s)"
        t=$("$here/pg-durable.sh" "$c" 8 2>/dev/null | grep -oE 'tps = [0-9.]+' | grep -oE '[0-9.]+' | head -1)
        t=${t:-0}
        if [ "$c" = 1 ]; then
            pg_one=$t
        elif python3 -c "import sys; sys.exit(0 if float('$t') > float('$pg_best') else 1)"; then
            pg_best=$t pg_best_clients=$c
        fi
    done
else
    note "PostgreSQL is not installed: its side is not measured"
fi

# My-Chat: the store alone and the HTTP API, 128 senders and one. The
# senders speak HTTP/1.1 on their own connections, as lean as pgbench's
# libpq; the row "through a general HTTP client" sends through reqwest,
# whose own CPU the two cores then share with the server.
note "My-Chat store, 128 senders"
"$load" --json store --senders 128 --messages 500 2>/dev/null | tail -1 > "$out/store128"
note "My-Chat HTTP, 128 senders"
"$load" --json http --senders 128 --messages 250 2>/dev/null | tail -1 > "$out/http128"
note "My-Chat HTTP, 128 senders, through a general HTTP client"
"$load" --json http --senders 128 --messages 250 --reqwest 2>/dev/null | tail -1 > "$out/http128g"
note "My-Chat HTTP, 1 sender"
"$load" --json http --senders 1 --messages 4000 2>/dev/null | tail -1 > "$out/http1"

# Idle sockets: My-Chat, then the Node.js peers (9,000 each).
: > "$out/idle" ; : > "$out/ws" ; : > "$out/sio"
if [ -z "${SKIP_IDLE:-}" ]; then
    note "My-Chat, 9,000 idle widget sockets"
    "$load" --json idle --sockets 9000 --hold 15 2>/dev/null | tail -1 > "$out/idle"
    if command -v node >/dev/null && command -v npm >/dev/null; then
        if [ ! -d "$here/peer-ws/node_modules" ]; then
            (cd "$here/peer-ws" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) || note "npm ci failed in bench/peer-ws"
        fi
        for s in ws sio; do
            sleep 10 # the previous run's client ports leave TIME_WAIT
            note "Node.js $s, 9,000 idle sockets"
            (cd "$here/peer-ws" && timeout 300 node measure.js --server $s --n 9000 --concurrency 200 --hold 15 --json 2>/dev/null | tail -1) > "$out/$s"
        done
    else
        note "Node.js is not installed: the socket peers are not measured"
    fi
fi

# The widget's first download, gzipped, from a fresh server.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$out/data"; : > "$out/config.toml"
"$server" serve --config "$out/config.toml" --data-dir "$out/data" --listen "127.0.0.1:$port" </dev/null >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done
widget=$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/widget.js" | wc -c)
kill "$pid"; wait "$pid" 2>/dev/null

python3 - "$out" "$pg_best" "$pg_best_clients" "$pg_one" "$widget" <<'PY'
import json, os, sys
out, pg, pg_clients, pg_one, widget = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.loads(f.read().strip() or "{}")
    except (OSError, ValueError):
        return {}
store, http, http1, general = load("store128"), load("http128"), load("http1"), load("http128g")
idle, ws, sio = load("idle"), load("ws"), load("sio")
def rate(r): return r.get("messagesPerSec", 0.0)
def p99(r): return r.get("latencyMs", {}).get("p99", float("nan"))
def cpu(r, k): return (r.get("store") or {}).get("cpu", {}).get(k)
def times(x, base): return f"{x / base:.2f}×" if base else "–"
def us(v): return f"{v:.0f}" if v is not None else "–"
print(f"Durable sends (PostgreSQL's best client count here: {pg_clients}; synchronous commit, one transaction per message)")
print()
print("| | messages/s | vs PostgreSQL | p99 ms | writer CPU µs/msg | process CPU µs/msg |")
print("|---|--:|--:|--:|--:|--:|")
print(f"| PostgreSQL, {pg_clients} clients (pgbench) | {pg:,.0f} | 1.00× | – | – | – |")
print(f"| My-Chat store, 128 senders | {rate(store):,.0f} | {times(rate(store), pg)} | {p99(store):.1f} | {us(cpu(store, 'writerMicrosPerMessage'))} | {us(cpu(store, 'processMicrosPerMessage'))} |")
print(f"| My-Chat HTTP, 128 senders | {rate(http):,.0f} | {times(rate(http), pg)} | {p99(http):.1f} | {us(cpu(http, 'writerMicrosPerMessage'))} | {us(cpu(http, 'processMicrosPerMessage'))} |")
print(f"| My-Chat HTTP, 128 senders, through a general HTTP client | {rate(general):,.0f} | {times(rate(general), pg)} | {p99(general):.1f} | {us(cpu(general, 'writerMicrosPerMessage'))} | {us(cpu(general, 'processMicrosPerMessage'))} |")
print(f"| PostgreSQL, 1 client (pgbench) | {pg_one:,.0f} | 1.00× | – | – | – |")
print(f"| My-Chat HTTP, 1 sender | {rate(http1):,.0f} | {times(rate(http1), pg_one)} | {p99(http1):.2f} | {us(cpu(http1, 'writerMicrosPerMessage'))} | {us(cpu(http1, 'processMicrosPerMessage'))} |")
print()
print("Idle WebSocket memory (server RSS per socket, from before the sockets opened to the end of the hold)")
print()
print("| server | sockets | KiB per socket |")
print("|---|--:|--:|")
def kib(v): return f"{v:.2f}" if isinstance(v, (int, float)) else "not measured"
print(f"| My-Chat (widget sockets) | {idle.get('opened', '–')} | {kib(idle.get('kibPerSocket'))} |")
print(f"| Node.js ws | {ws.get('opened', '–')} | {kib(ws.get('kibPerSocketHeld'))} |")
print(f"| socket.io | {sio.get('opened', '–')} | {kib(sio.get('kibPerSocketHeld'))} |")
print()
print(f"Widget first load: {widget:,} bytes gzipped")
print()
goals = [
    ("HTTP 128 senders ≥ 3× PostgreSQL", pg > 0 and rate(http) >= 3 * pg),
    ("HTTP 128 senders p99 ≤ 20 ms", p99(http) <= 20),
    ("HTTP 1 sender ≥ 1.5× PostgreSQL's 1 client", pg_one > 0 and rate(http1) >= 1.5 * pg_one),
    ("idle socket ≤ 4 KiB", isinstance(idle.get("kibPerSocket"), (int, float)) and idle["kibPerSocket"] <= 4.0),
    ("widget first load ≤ 6 KB", 0 < widget <= 6144),
]
print("goals: " + "; ".join(f"{name}: {'met' if ok else 'not met'}" for name, ok in goals))
sys.exit(0 if all(ok for _, ok in goals) else 1)
PY
