#!/usr/bin/env bash
# compare.sh — run the same load scenarios against hubmq, mosquitto and (if it installs) rumqttd
# on this machine, in one go, and write benches/results/YYYY-MM-DD-<host>.md.
#
# Every broker listens on free loopback ports only, is restarted for each scenario (so RSS and
# CPU belong to that scenario alone) and is stopped at the end. Every load run is bounded by
# `timeout`. With the defaults the whole script takes about 5–8 minutes (plus builds).
#
# Environment knobs (defaults in brackets):
#   BROKERS="hubmq mosquitto rumqttd"   which brokers to run
#   DURATION=10 WARMUP=1                measurement / warm-up seconds per load run
#   SUBS=1000 PAIRS=50 CONNECTS=5000    scenario sizes
#   FANOUT_RATE=50                      publishes/s for the fixed-rate latency run (× SUBS deliveries/s)
#   PAIRS_RATE=20000                    total messages/s for the fixed-rate QoS 1 pairs run
#   WINDOW=32                           messages a publisher may be ahead of its subscribers
#   WORKERS=2                           hubmq workers
#   HUBMQ_AUTH=jwt|anonymous            jwt: the generator signs HS256 tokens with the generated key
#   GEN_THREADS=1                       load generator threads
#   RUMQTTD_INSTALL_TIMEOUT=600         seconds allowed for `cargo install rumqttd`
#   SKIP_BUILD=0                        1: use the binaries already in target/release
#   CASES="fanout-ws-sat …"             scenarios to run (default: all eight, in the order below)
#   HUBMQ_BASE=                         path to another hubmq binary (say, a build of the previous
#                                       commit): runs as broker "hubmq-base" in the same run, so a
#                                       change is measured against its baseline under the same noise
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BROKERS=${BROKERS:-"hubmq mosquitto rumqttd"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
SUBS=${SUBS:-1000}
PAIRS=${PAIRS:-50}
CONNECTS=${CONNECTS:-5000}
FANOUT_RATE=${FANOUT_RATE:-50}
PAIRS_RATE=${PAIRS_RATE:-20000}
WINDOW=${WINDOW:-32}
WORKERS=${WORKERS:-2}
HUBMQ_AUTH=${HUBMQ_AUTH:-jwt}
GEN_THREADS=${GEN_THREADS:-1}
RUMQTTD_INSTALL_TIMEOUT=${RUMQTTD_INSTALL_TIMEOUT:-600}
SKIP_BUILD=${SKIP_BUILD:-0}

BENCH="$ROOT/target/release/hubmq-bench"
HUBMQ="$ROOT/target/release/hubmq"
HUBMQ_BASE=${HUBMQ_BASE:-}
if [[ -n "$HUBMQ_BASE" && " $BROKERS " != *" hubmq-base "* ]]; then BROKERS="$BROKERS hubmq-base"; fi
RESULTS="$ROOT/benches/results"
STAMP="$(date +%F)-$(hostname -s 2>/dev/null || hostname)"
WORK=$(mktemp -d /tmp/hubmq-compare.XXXXXX)
NOTES="$WORK/notes.txt"
: >"$NOTES"
BROKER_PID=""
# Per-run limit: set-up + warm-up + measurement + drain, with room to spare.
RUN_LIMIT=$((DURATION + WARMUP + 60))

log() { echo "[compare] $*" >&2; }
note() { echo "- $*" >>"$NOTES"; log "$*"; }

stop_broker() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        # Each may fail once the broker is gone (and `wait` returns its exit status).
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    BROKER_PID=""
}
cleanup() {
    stop_broker
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Highest allowed open-file limit: 1000 subscribers and 5000 connects need descriptors on both
# ends (the brokers are started from this shell and inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# A loopback port nobody listens on (bash's /dev/tcp: the connect fails when it is free), taken
# below the kernel's ephemeral range: ports left in TIME_WAIT by the connect storms are all
# ephemeral ones, and a broker could not bind them.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
((EPHEMERAL_LOW > 12000)) || EPHEMERAL_LOW=32768
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

wait_port() { # port seconds
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$BROKER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- builds and installs
if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building hubmq-bench (release)"
    (cd "$ROOT" && cargo build --release -p hubmq-bench) || { log "cannot build hubmq-bench"; exit 1; }
fi
[[ -x "$BENCH" ]] || { log "missing $BENCH"; exit 1; }

have_broker() { [[ " $BROKERS " == *" $1 "* ]]; }
drop_broker() { BROKERS=$(echo " $BROKERS " | sed "s/ $1 / /"); }

if have_broker hubmq; then
    if [[ "$SKIP_BUILD" != 1 ]]; then
        log "building hubmq (release)"
        (cd "$ROOT" && cargo build --release -p hubmq) || { note "hubmq: release build failed, skipped"; drop_broker hubmq; }
    fi
    [[ -x "$HUBMQ" ]] || { note "hubmq: $HUBMQ missing, skipped"; drop_broker hubmq; }
fi

if have_broker hubmq-base && [[ ! -x "$HUBMQ_BASE" ]]; then
    note "hubmq-base: HUBMQ_BASE=$HUBMQ_BASE is not an executable, skipped"
    drop_broker hubmq-base
fi

if have_broker mosquitto && ! command -v mosquitto >/dev/null; then
    log "installing mosquitto (Debian package)"
    # A failed install is reported below and the broker skipped, not fatal.
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null || true
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto >/dev/null || true
    fi
    command -v mosquitto >/dev/null || { note "mosquitto: apt-get install failed, skipped"; drop_broker mosquitto; }
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

RUMQTTD=$(command -v rumqttd || echo "$HOME/.cargo/bin/rumqttd")
if have_broker rumqttd && [[ ! -x "$RUMQTTD" ]]; then
    log "installing rumqttd (cargo install, at most ${RUMQTTD_INSTALL_TIMEOUT}s)"
    # Not --locked: rumqttd 0.20.0's lock pins metrics 0.22.1, which current rustc rejects (E0521).
    if ! timeout "$RUMQTTD_INSTALL_TIMEOUT" cargo install rumqttd >"$WORK/rumqttd-install.log" 2>&1; then
        note "rumqttd: \`cargo install rumqttd\` failed or took longer than ${RUMQTTD_INSTALL_TIMEOUT}s, skipped ($(tail -n 1 "$WORK/rumqttd-install.log"))"
        drop_broker rumqttd
    fi
fi

# ---------------------------------------------------------------- brokers
# Each start_* sets BROKER_PID, WS_URL, TCP_URL and AUTH_ARGS_WS / AUTH_ARGS_TCP.
# The baseline build: the same configuration, another binary.
start_hubmq-base() {
    local HUBMQ=$HUBMQ_BASE
    start_hubmq
}

start_hubmq() {
    local http tcp key cfg
    http=$(free_port) && tcp=$(free_port) || return 1
    key="bench-$(date +%s%N)"
    cfg="$WORK/hubmq.toml"
    cat >"$cfg" <<EOF
[server]
workers = $WORKERS
public_endpoints = ["http://127.0.0.1:$http"]

[[listeners]]
kind = "http"
bind = "127.0.0.1:$http"

[[listeners]]
kind = "tcp"
bind = "127.0.0.1:$tcp"

[auth]
access_keys = ["$key"]

[hubs.bench]
anonymous_connect = true
EOF
    "$HUBMQ" --config "$cfg" >"$WORK/hubmq.log" 2>&1 &
    BROKER_PID=$!
    local deadline=$((SECONDS + 20))
    until grep -q "hubmq ready" "$WORK/hubmq.log" 2>/dev/null; do
        if ((SECONDS >= deadline)) || ! kill -0 "$BROKER_PID" 2>/dev/null; then
            log "hubmq did not become ready: $(tail -n 3 "$WORK/hubmq.log")"
            return 1
        fi
        sleep 0.1
    done
    WS_URL="ws://127.0.0.1:$http/clients/mqtt/hubs/bench"
    TCP_URL="tcp://127.0.0.1:$tcp"
    local aud="http://127.0.0.1:$http/clients/mqtt/hubs/bench"
    if [[ "$HUBMQ_AUTH" == jwt ]]; then
        AUTH_ARGS_WS=(--jwt-key "$key")
        AUTH_ARGS_TCP=(--username bench --jwt-key "$key" --jwt-audience "$aud")
    else
        AUTH_ARGS_WS=()
        AUTH_ARGS_TCP=(--username bench)
    fi
}

start_mosquitto() {
    local tcp ws cfg
    tcp=$(free_port) && ws=$(free_port) || return 1
    cfg="$WORK/mosquitto.conf"
    # set_tcp_nodelay: without it mosquitto's small writes wait on Nagle + delayed ACK and its
    # latency and throughput are needlessly bad; an operator tuning for speed would set it.
    cat >"$cfg" <<EOF
per_listener_settings false
allow_anonymous true
set_tcp_nodelay true
persistence false
log_dest stderr
log_type error
log_type warning
listener $tcp 127.0.0.1
protocol mqtt
listener $ws 127.0.0.1
protocol websockets
EOF
    "$MOSQUITTO" -c "$cfg" >"$WORK/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    wait_port "$tcp" 10 && wait_port "$ws" 10 || { log "mosquitto did not start: $(tail -n 3 "$WORK/mosquitto.log")"; return 1; }
    WS_URL="ws://127.0.0.1:$ws/mqtt"
    TCP_URL="tcp://127.0.0.1:$tcp"
    AUTH_ARGS_WS=()
    AUTH_ARGS_TCP=()
}

start_rumqttd() {
    local tcp ws cfg
    tcp=$(free_port) && ws=$(free_port) || return 1
    cfg="$WORK/rumqttd.toml"
    cat >"$cfg" <<EOF
id = 0

[router]
id = 0
max_connections = 20000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$tcp"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 100
    dynamic_filters = true

[ws.1]
name = "ws-1"
listen = "127.0.0.1:$ws"
next_connection_delay_ms = 1
    [ws.1.connections]
    connection_timeout_ms = 60000
    max_client_id_len = 256
    throttle_delay_ms = 0
    max_payload_size = 20480
    max_inflight_count = 500
    max_inflight_size = 1024
EOF
    RUST_LOG=error "$RUMQTTD" --config "$cfg" >"$WORK/rumqttd.log" 2>&1 &
    BROKER_PID=$!
    wait_port "$tcp" 10 && wait_port "$ws" 10 || { log "rumqttd did not start: $(tail -n 3 "$WORK/rumqttd.log")"; return 1; }
    WS_URL="ws://127.0.0.1:$ws/mqtt"
    TCP_URL="tcp://127.0.0.1:$tcp"
    AUTH_ARGS_WS=()
    AUTH_ARGS_TCP=()
}

broker_version() {
    case "$1" in
    hubmq) "$HUBMQ" --version 2>/dev/null | head -n 1 || echo "hubmq (version unknown)" ;;
    hubmq-base) echo "baseline: $("$HUBMQ_BASE" --version 2>/dev/null | head -n 1 || echo "hubmq (version unknown)")" ;;
    mosquitto) "$MOSQUITTO" -h 2>/dev/null | head -n 1 ;;
    rumqttd) echo "rumqttd $(cargo install --list 2>/dev/null | sed -n 's/^rumqttd v\([^:]*\):.*/\1/p')" ;;
    esac
}

# ---------------------------------------------------------------- scenarios
# run_case LABEL BROKER TRANSPORT SUBCOMMAND ARGS... — fresh broker, one bounded run, JSON kept.
run_case() {
    local label=$1 broker=$2 transport=$3 sub=$4
    shift 4
    # File names start with the scenario's position so the report keeps the scenario order.
    local json="$WORK/json/$(printf %02d "${CASE_ORDER[$label]:-99}")-$label--$broker.json" url auth=()
    stop_broker
    # A second try with new ports covers a port grabbed by someone else in between.
    if ! "start_$broker" && { stop_broker; ! "start_$broker"; }; then
        stop_broker
        printf '{"label":"%s","broker":"%s","error":"broker did not start"}\n' "$label" "$broker" >"$json"
        return
    fi
    if [[ $transport == ws ]]; then url=$WS_URL; auth=("${AUTH_ARGS_WS[@]}"); else url=$TCP_URL; auth=("${AUTH_ARGS_TCP[@]}"); fi
    log "$label on $broker ($url)"
    # A failed or timed-out run is recorded in its JSON below, not fatal.
    local rc=0
    timeout --kill-after=5 "$RUN_LIMIT" "$BENCH" "$sub" --url "$url" "${auth[@]}" \
        --broker-pid "$BROKER_PID" --broker-name "$broker" --label "$label" \
        --threads "$GEN_THREADS" --json "$json" "$@" >>"$WORK/runs.log" 2>&1 || rc=$?
    tail -n 1 "$WORK/runs.log" >&2
    if [[ ! -s "$json" ]]; then
        printf '{"label":"%s","broker":"%s","error":"load run ended with code %s and no result"}\n' \
            "$label" "$broker" "$rc" >"$json"
    fi
    stop_broker
}

declare -A CASE_ORDER=([fanout-ws-sat]=1 [fanout-tcp-sat]=2 [fanout-ws-rate]=3 [fanout-tcp-rate]=4
    [pairs-ws-qos1]=5 [pairs-ws-qos1-rate]=6 [connect-ws]=7 [connect-tcp]=8)
mkdir -p "$WORK/json" "$RESULTS"
LOAD=(--duration "$DURATION" --warmup "$WARMUP" --window "$WINDOW")
ORDERED=""
for b in mosquitto hubmq hubmq-base rumqttd; do have_broker "$b" && ORDERED="$ORDERED $b"; done
[[ -n "$ORDERED" ]] || { log "no broker left to run"; exit 1; }
START=$SECONDS
# Scenario by scenario, every broker in turn: a slow drift of the machine's speed then falls on
# all brokers of a scenario alike instead of on whichever broker ran last.
scenario() {
    local b=$2
    case $1 in
    fanout-ws-sat) run_case fanout-ws-sat "$b" ws fanout --subscribers "$SUBS" --qos 0 --payload 64 "${LOAD[@]}" ;;
    fanout-tcp-sat) run_case fanout-tcp-sat "$b" tcp fanout --subscribers "$SUBS" --qos 0 --payload 64 "${LOAD[@]}" ;;
    fanout-ws-rate) run_case fanout-ws-rate "$b" ws fanout --subscribers "$SUBS" --qos 0 --payload 64 --rate "$FANOUT_RATE" "${LOAD[@]}" ;;
    fanout-tcp-rate) run_case fanout-tcp-rate "$b" tcp fanout --subscribers "$SUBS" --qos 0 --payload 64 --rate "$FANOUT_RATE" "${LOAD[@]}" ;;
    pairs-ws-qos1) run_case pairs-ws-qos1 "$b" ws pairs --pairs "$PAIRS" --qos 1 --payload 64 "${LOAD[@]}" ;;
    pairs-ws-qos1-rate) run_case pairs-ws-qos1-rate "$b" ws pairs --pairs "$PAIRS" --qos 1 --payload 64 --rate "$PAIRS_RATE" "${LOAD[@]}" ;;
    connect-ws) run_case connect-ws "$b" ws connect --count "$CONNECTS" --concurrency 100 ;;
    connect-tcp) run_case connect-tcp "$b" tcp connect --count "$CONNECTS" --concurrency 100 ;;
    esac
}
flip=0
ALL_CASES="fanout-ws-sat fanout-tcp-sat fanout-ws-rate fanout-tcp-rate pairs-ws-qos1 pairs-ws-qos1-rate connect-ws connect-tcp"
for case in ${CASES:-$ALL_CASES}; do
    [[ " $ALL_CASES " == *" $case "* ]] || { log "unknown case $case (known: $ALL_CASES)"; exit 1; }
    # Every other scenario in reverse order: a broker that runs first after another scenario's
    # load (thousands of sockets in TIME_WAIT, say) is not always the same one.
    order=$ORDERED
    if ((flip)); then order=$(printf '%s\n' $ORDERED | tac | tr '\n' ' '); fi
    flip=$((1 - flip))
    for b in $order; do scenario "$case" "$b"; done
done
ELAPSED=$((SECONDS - START))

# ---------------------------------------------------------------- report
OUT="$RESULTS/$STAMP.md"
{
    echo "# Broker comparison, $(date +%F)"
    echo
    echo "Written by \`benches/compare.sh\` in ${ELAPSED}s of load runs. How to read it: \`benches/README.md\`."
    echo
    echo "## Machine"
    echo
    echo "- host: \`$(hostname -s 2>/dev/null || hostname)\`, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
    echo "- kernel: $(uname -sr)"
    echo "- load generator: \`hubmq-bench\`, $GEN_THREADS thread(s), same machine (it shares the CPUs with the broker)"
    echo
    echo "## Brokers"
    echo
    for b in $ORDERED; do
        case $b in
        hubmq) echo "- $(broker_version hubmq): workers = $WORKERS, auth = $HUBMQ_AUTH" ;;
        hubmq-base) echo "- $(broker_version hubmq-base) ($HUBMQ_BASE): same configuration" ;;
        mosquitto) echo "- $(broker_version mosquitto) (Debian package): set_tcp_nodelay true, persistence off" ;;
        rumqttd) echo "- $(broker_version rumqttd): the upstream demo config (v4 + ws listeners, ports changed)" ;;
        esac
    done
    echo
    echo "## Settings"
    echo
    echo "- ${DURATION}s measured after ${WARMUP}s warm-up, fresh broker per run; fan-out: $SUBS subscribers, 64 B, window $WINDOW; fixed rate: $FANOUT_RATE publishes/s; pairs: $PAIRS, QoS 1, window $WINDOW, fixed rate $PAIRS_RATE msgs/s; connects: $CONNECTS, concurrency 100"
    echo
    echo "## Results"
    echo
    # Without a table the raw JSON is still copied below.
    "$BENCH" report --baseline mosquitto "$WORK"/json/*.json || echo "(hubmq-bench report failed; raw JSON in $RESULTS/$STAMP/)"
    if [[ -s "$NOTES" ]]; then
        echo "## Notes"
        echo
        cat "$NOTES"
        echo
    fi
} >"$OUT"
mkdir -p "$RESULTS/$STAMP"
cp "$WORK"/json/*.json "$RESULTS/$STAMP/"
cp "$WORK/runs.log" "$RESULTS/$STAMP/runs.log"
log "wrote $OUT (raw JSON in $RESULTS/$STAMP/)"
