#!/usr/bin/env bash
# eventgrid.sh — hubmq's Event Grid mode (wildcard routing, CUSTOM-JWT clients) against mosquitto
# (anonymous MQTT 5) on the same `hubmq-bench egfanout` load, in one go, plus one `trie` run.
#
# Each case gets a freshly started broker on free loopback ports; every load run is bounded by
# `timeout`; brokers are stopped and the work directory (RSA key included) removed at the end.
# The RSA key is generated here with openssl for this run only and never written under the repo.
# Raw JSON and the run log go to benches/results/YYYY-MM-DD-eventgrid/; a Markdown table is
# printed on stdout. With the defaults the load runs take about 2 minutes (plus builds).
#
# Environment knobs (defaults in brackets):
#   BROKERS="mosquitto hubmq"   which brokers to run
#   SUBS=200 TOPICS=100         subscribers; distinct fleet/{i}/status topics the publisher cycles
#   DURATION=10 WARMUP=1        measurement / warm-up seconds per run
#   WINDOW=32                   messages the publisher may be ahead of the average subscriber
#   RATE=50                     publishes/s of the fixed-rate latency case (× SUBS deliveries/s)
#   WORKERS=2                   hubmq workers
#   GEN_THREADS=1               load generator threads
#   CASES="eg-mixed-qos0 eg-mixed-qos1 eg-exact-qos0 eg-mixed-rate"
#   SKIP_BUILD=0                1: use the binaries already in target/release
#   OUTDIR=benches/results/YYYY-MM-DD-eventgrid   where raw JSON, log and table go
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=eventgrid-config.sh
. "$ROOT/benches/eventgrid-config.sh"
BROKERS=${BROKERS:-"mosquitto hubmq"}
SUBS=${SUBS:-200}
TOPICS=${TOPICS:-100}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
WINDOW=${WINDOW:-32}
RATE=${RATE:-50}
WORKERS=${WORKERS:-2}
GEN_THREADS=${GEN_THREADS:-1}
CASES=${CASES:-"eg-mixed-qos0 eg-mixed-qos1 eg-exact-qos0 eg-mixed-rate"}
SKIP_BUILD=${SKIP_BUILD:-0}

BENCH="$ROOT/target/release/hubmq-bench"
HUBMQ="$ROOT/target/release/hubmq"
OUTDIR=${OUTDIR:-"$ROOT/benches/results/$(date +%F)-eventgrid"}
WORK=$(mktemp -d /tmp/hubmq-eventgrid.XXXXXX)
BROKER_PID=""
RUN_LIMIT=$((DURATION + WARMUP + 60))
ISSUER="https://issuer.bench.local"
AUDIENCE="bench.eventgrid.local"

log() { echo "[eventgrid] $*" >&2; }

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

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# A free loopback port below the ephemeral range (as in compare.sh).
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

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building hubmq and hubmq-bench (release)"
    (cd "$ROOT" && cargo build --release -p hubmq -p hubmq-bench) || { log "release build failed"; exit 1; }
fi
[[ -x "$BENCH" ]] || { log "missing $BENCH"; exit 1; }
command -v openssl >/dev/null || { log "openssl is needed for the CUSTOM-JWT key"; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# The run's RSA key: the private PEM signs the tokens (hubmq-bench --eg-key), the public PEM is
# the namespace's custom_jwt.public_key_files.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/issuer.pem" 2>/dev/null &&
    openssl pkey -in "$WORK/issuer.pem" -pubout -out "$WORK/issuer.pub.pem" 2>/dev/null ||
    { log "openssl could not make an RSA key"; exit 1; }

# Each start_* sets BROKER_PID, URL and AUTH_ARGS.
start_hubmq() {
    local http eg cfg
    http=$(free_port) && eg=$(free_port) || return 1
    cfg="$WORK/hubmq.toml"
    write_eventgrid_config "$cfg" "$WORKERS" "$http" "$eg" "$AUDIENCE" "$ISSUER" \
        "$WORK/issuer.pub.pem" bench
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
    URL="tcp://127.0.0.1:$eg"
    AUTH_ARGS=(--eg-key "$WORK/issuer.pem" --eg-issuer "$ISSUER" --eg-audience "$AUDIENCE")
}

start_mosquitto() {
    local tcp cfg
    tcp=$(free_port) || return 1
    cfg="$WORK/mosquitto.conf"
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
EOF
    "$MOSQUITTO" -c "$cfg" >"$WORK/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    wait_port "$tcp" 10 || { log "mosquitto did not start: $(tail -n 3 "$WORK/mosquitto.log")"; return 1; }
    URL="tcp://127.0.0.1:$tcp"
    AUTH_ARGS=()
}

case_args() {
    local load=(--subscribers "$SUBS" --topics "$TOPICS" --payload 64 --duration "$DURATION" --warmup "$WARMUP" --window "$WINDOW")
    case $1 in
    eg-mixed-qos0) echo "${load[@]} --filters mixed --qos 0" ;;
    eg-mixed-qos1) echo "${load[@]} --filters mixed --qos 1" ;;
    eg-exact-qos0) echo "${load[@]} --filters exact --qos 0" ;;
    eg-mixed-rate) echo "${load[@]} --filters mixed --qos 0 --rate $RATE" ;;
    *) return 1 ;;
    esac
}

mkdir -p "$WORK/json" "$OUTDIR"
: >"$WORK/runs.log"
for c in $CASES; do
    args=$(case_args "$c") || { log "unknown case $c"; continue; }
    for b in $BROKERS; do
        json="$WORK/json/$c--$b.json"
        stop_broker
        if ! "start_$b" && { stop_broker; ! "start_$b"; }; then
            stop_broker
            printf '{"label":"%s","broker":"%s","error":"broker did not start"}\n' "$c" "$b" >"$json"
            continue
        fi
        log "$c on $b ($URL)"
        # shellcheck disable=SC2086 # $args is a word list on purpose
        echo "+ hubmq-bench egfanout --url $URL ${AUTH_ARGS[*]} --broker-pid PID --broker-name $b --label $c $args" >>"$WORK/runs.log"
        # A failed or timed-out run is recorded in its JSON below, not fatal.
        rc=0
        # shellcheck disable=SC2086
        timeout --kill-after=5 "$RUN_LIMIT" "$BENCH" egfanout --url "$URL" "${AUTH_ARGS[@]}" \
            --broker-pid "$BROKER_PID" --broker-name "$b" --label "$c" \
            --threads "$GEN_THREADS" --json "$json" $args >>"$WORK/runs.log" 2>&1 || rc=$?
        tail -n 1 "$WORK/runs.log" >&2
        [[ -s "$json" ]] || printf '{"label":"%s","broker":"%s","error":"load run ended with code %s and no result"}\n' "$c" "$b" "$rc" >"$json"
        stop_broker
    done
done

log "trie micro-benchmark"
"$BENCH" trie --json "$WORK/json/trie.json" >>"$WORK/runs.log" 2>&1 || log "trie run failed (see the run log)"
tail -n 1 "$WORK/runs.log" >&2

# Markdown table: one row per (case, broker), ratios against mosquitto of the same case.
{
    echo "| case | broker | auth | deliveries/s | CPU-µs/delivery | p50 µs | p99 µs | RSS MiB | lost | errors | rate vs mosquitto | CPU efficiency vs mosquitto |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in $CASES; do
        base="$WORK/json/$c--mosquitto.json"
        for b in $BROKERS; do
            f="$WORK/json/$c--$b.json"
            [[ -s $f ]] || continue
            jq -r --slurpfile base <( [[ -s $base ]] && cat "$base" || echo '{}') '
              def r(x): if x == null then "–" else x end;
              def ratio(a; b): if (a // 0) > 0 and (b // 0) > 0 then ((a / b * 100 | round) / 100 | tostring) + "×" else "–" end;
              if .error then "| \(.label) | \(.broker) | | failed: \(.error) | | | | | | | | |"
              else "| \(.label) | \(.broker) | \(.auth) | \(.deliveries_per_sec) | \(r(.cpu_us_per_delivery)) | \(.p50_us) | \(.p99_us) | \(if .broker_rss_kib then (.broker_rss_kib / 1024 * 10 | round) / 10 else "–" end) | \(.lost) | \(.errors) | \(ratio(.deliveries_per_sec; $base[0].deliveries_per_sec)) | \(ratio($base[0].cpu_us_per_delivery; .cpu_us_per_delivery)) |"
              end' "$f" || log "jq could not read $f"
        done
    done
    echo
    # No trie line when that run failed.
    jq -r '"trie: \(.filters // "?") filters, \(.ns_per_lookup // .lookup_ns // "?") ns/lookup"' "$WORK/json/trie.json" 2>/dev/null || true
} | tee "$WORK/table.md"

cp "$WORK"/json/*.json "$WORK/runs.log" "$WORK/table.md" "$OUTDIR/"
log "raw JSON, run log and table in $OUTDIR/"
