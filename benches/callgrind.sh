#!/usr/bin/env bash
# callgrind.sh — instructions per delivered QoS 0 message (repeatable, unlike wall-clock numbers).
#
# Runs the broker under `valgrind --tool=callgrind` with a throw-away config, drives a short
# bounded fan-out with hubmq-bench, zeroes callgrind's counters when the measurement interval
# starts and dumps them when it ends (the generator's --at-start/--at-end hooks), then prints
# total Ir / deliveries. Set-up (start-up, connects, subscribes) is not counted.
#
# hubmq runs with HUBMQ_IO_DRIVER=epoll: valgrind does not model io_uring completions (under it
# the io_uring driver hangs), so the count is for the epoll driver — the same broker code, with
# epoll_wait + read/write syscalls instead of ring submissions. WORKERS=1 by default: callgrind
# serialises threads and a single worker keeps runs comparable.
# BROKER=mosquitto runs the same measurement on mosquitto (a baseline, and a check that the
# mechanism works without hubmq).
#
# Knobs: BROKER=hubmq|mosquitto SUBS=100 DURATION=5 WARMUP=2 WINDOW=8 WORKERS=1
#        TRANSPORT=ws|tcp SKIP_BUILD=0
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BROKER=${BROKER:-hubmq}
SUBS=${SUBS:-100}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
WINDOW=${WINDOW:-8}
WORKERS=${WORKERS:-1}
TRANSPORT=${TRANSPORT:-ws}
SKIP_BUILD=${SKIP_BUILD:-0}
BENCH="$ROOT/target/release/hubmq-bench"
HUBMQ="$ROOT/target/release/hubmq"
WORK=$(mktemp -d /tmp/hubmq-callgrind.XXXXXX)
PID=""

cleanup() {
    if [[ -n "$PID" ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    echo "callgrind files kept in $WORK" >&2
}
trap cleanup EXIT

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v callgrind_control >/dev/null || { echo "callgrind_control missing (valgrind package)" >&2; exit 1; }
if [[ "$SKIP_BUILD" != 1 ]]; then
    pkgs=(-p hubmq-bench)
    [[ $BROKER == hubmq ]] && pkgs+=(-p hubmq)
    (cd "$ROOT" && cargo build --release "${pkgs[@]}") || exit 1
fi

# Ports below the ephemeral range (see compare.sh).
low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
((low > 12000)) || low=32768
HTTP=$((10000 + RANDOM % (low - 10001)))
TCP=$((HTTP + 1))
KEY="callgrind-$(date +%s%N)"

if [[ $BROKER == hubmq ]]; then
    cat >"$WORK/hubmq.toml" <<EOF
[server]
workers = $WORKERS
public_endpoints = ["http://127.0.0.1:$HTTP"]

[[listeners]]
kind = "http"
bind = "127.0.0.1:$HTTP"

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:$TCP"

[auth]
access_keys = ["$KEY"]

[hubs.bench]
anonymous_connect = true
EOF
    CMD=("$HUBMQ" --config "$WORK/hubmq.toml")
    AUD="http://127.0.0.1:$HTTP/clients/mqtt/hubs/bench"
    if [[ $TRANSPORT == ws ]]; then
        ARGS=(--url "ws://127.0.0.1:$HTTP/clients/mqtt/hubs/bench" --jwt-key "$KEY")
    else
        ARGS=(--url "tcp://127.0.0.1:$TCP" --username bench --jwt-key "$KEY" --jwt-audience "$AUD")
    fi
else
    # `user`: mosquitto started as root drops to user mosquitto, and then callgrind_control
    # cannot reach valgrind's gdbserver pipe; stay as whoever runs the script.
    cat >"$WORK/mosquitto.conf" <<EOF
user $(id -un)
allow_anonymous true
set_tcp_nodelay true
persistence false
log_dest stderr
log_type error
listener $TCP 127.0.0.1
listener $HTTP 127.0.0.1
protocol websockets
EOF
    CMD=(mosquitto -c "$WORK/mosquitto.conf")
    if [[ $TRANSPORT == ws ]]; then ARGS=(--url "ws://127.0.0.1:$HTTP/mqtt"); else ARGS=(--url "tcp://127.0.0.1:$TCP"); fi
fi

# Start-up is counted too, but the --at-start hook zeroes the counters.
HUBMQ_IO_DRIVER=epoll valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p" "${CMD[@]}" >"$WORK/broker.log" 2>&1 &
PID=$!
ready() {
    if [[ $BROKER == hubmq ]]; then
        grep -q "hubmq ready" "$WORK/broker.log"
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$HTTP") 2>/dev/null
    fi
}
deadline=$((SECONDS + 120))
until ready; do
    if ((SECONDS >= deadline)) || ! kill -0 "$PID" 2>/dev/null; then
        echo "$BROKER under valgrind did not start:" >&2
        tail -n 5 "$WORK/broker.log" >&2
        exit 1
    fi
    sleep 0.2
done

timeout $((DURATION + WARMUP + 120)) "$BENCH" fanout "${ARGS[@]}" --subscribers "$SUBS" --qos 0 --payload 64 \
    --duration "$DURATION" --warmup "$WARMUP" --window "$WINDOW" --broker-pid "$PID" --broker-name "$BROKER" \
    --at-start "callgrind_control --zero $PID >/dev/null" \
    --at-end "callgrind_control --dump=measured $PID >/dev/null" \
    --json "$WORK/fanout.json" || { echo "load run failed" >&2; exit 1; }

deliveries=$(sed -n 's/^ *"deliveries": *\([0-9]*\).*/\1/p' "$WORK/fanout.json")
# The dump made by --at-end is the one whose header names the `measured` trigger.
dump=$(grep -l "measured" "$WORK"/callgrind.out.* 2>/dev/null | head -n 1 || true)
[[ -n "$dump" ]] || { echo "no callgrind dump found in $WORK" >&2; exit 1; }
ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dump" | head -n 1)
[[ -n "$ir" ]] || ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump" | head -n 1)
if [[ -z "$ir" || -z "$deliveries" || "$deliveries" == 0 ]]; then
    echo "could not compute: Ir='$ir' deliveries='$deliveries' (dump $dump)" >&2
    exit 1
fi
echo "$BROKER over $TRANSPORT, $SUBS subscribers: $ir instructions / $deliveries deliveries = $((ir / deliveries)) Ir per delivery (hubmq target ≤ 600)"
echo "inspect: callgrind_annotate $dump | head -n 40"
