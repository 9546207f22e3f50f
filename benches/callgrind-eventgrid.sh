#!/usr/bin/env bash
# callgrind-eventgrid.sh — instructions per delivered QoS 0 message in hubmq's Event Grid mode
# (MQTT 5, CUSTOM-JWT clients, wildcard routing), the companion of callgrind.sh (Web PubSub).
#
# Same method as callgrind.sh: hubmq runs under `valgrind --tool=callgrind` with
# HUBMQ_IO_DRIVER=epoll (valgrind does not model io_uring) and WORKERS=1; `hubmq-bench egfanout`
# connects and subscribes everyone, warms up, then its --at-start hook zeroes callgrind's
# counters and its --at-end hook dumps them, so start-up, RS256 token checks, CONNECT and
# SUBSCRIBE are not counted. The result is the dump's total Ir / deliveries in the interval.
# The window bounds what is in flight at either edge (≤ WINDOW × SUBS deliveries), which is the
# error of the ratio: with the defaults < 1 % of the interval's deliveries.
#
# The namespace config is eventgrid.sh's: topic space fleet/#, $all Publisher + Subscriber,
# every rate quota 0 (off). The RSA key is made with openssl for the run in its own temp
# directory and removed at exit; the callgrind files stay in $WORK for callgrind_annotate.
#
# Knobs: FILTERS=mixed|exact|plus|hash SUBS=100 TOPICS=100 DURATION=5 WARMUP=2 WINDOW=8
#        WORKERS=1 SKIP_BUILD=0 TOP=10 (functions listed by inclusive Ir; 0 = none)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=eventgrid-config.sh
. "$ROOT/benches/eventgrid-config.sh"
FILTERS=${FILTERS:-mixed}
SUBS=${SUBS:-100}
TOPICS=${TOPICS:-100}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
WINDOW=${WINDOW:-8}
WORKERS=${WORKERS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
TOP=${TOP:-10}
BENCH="$ROOT/target/release/hubmq-bench"
HUBMQ="$ROOT/target/release/hubmq"
ISSUER="https://issuer.bench.local"
AUDIENCE="bench.eventgrid.local"
WORK=$(mktemp -d /tmp/hubmq-callgrind-eg.XXXXXX)
KEYDIR=$(mktemp -d /tmp/hubmq-callgrind-eg-key.XXXXXX)
PID=""

cleanup() {
    if [[ -n "$PID" ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$KEYDIR"
    echo "callgrind files kept in $WORK" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case $FILTERS in mixed | exact | plus | hash) ;; *) echo "FILTERS must be mixed, exact, plus or hash" >&2; exit 1 ;; esac
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v callgrind_control >/dev/null || { echo "callgrind_control missing (valgrind package)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is needed for the CUSTOM-JWT key" >&2; exit 1; }
if [[ "$SKIP_BUILD" != 1 ]]; then
    (cd "$ROOT" && cargo build --release -p hubmq -p hubmq-bench) || exit 1
fi

# Ports below the ephemeral range (see compare.sh).
low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
((low > 12000)) || low=32768
HTTP=$((10000 + RANDOM % (low - 10001)))
EG=$((HTTP + 1))

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KEYDIR/issuer.pem" 2>/dev/null &&
    openssl pkey -in "$KEYDIR/issuer.pem" -pubout -out "$KEYDIR/issuer.pub.pem" 2>/dev/null ||
    { echo "openssl could not make an RSA key" >&2; exit 1; }

write_eventgrid_config "$WORK/hubmq.toml" "$WORKERS" "$HTTP" "$EG" "$AUDIENCE" "$ISSUER" \
    "$KEYDIR/issuer.pub.pem" callgrind

HUBMQ_IO_DRIVER=epoll valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p" \
    "$HUBMQ" --config "$WORK/hubmq.toml" >"$WORK/broker.log" 2>&1 &
PID=$!
deadline=$((SECONDS + 120))
until grep -q "hubmq ready" "$WORK/broker.log"; do
    if ((SECONDS >= deadline)) || ! kill -0 "$PID" 2>/dev/null; then
        echo "hubmq under valgrind did not start:" >&2
        tail -n 5 "$WORK/broker.log" >&2
        exit 1
    fi
    sleep 0.2
done

timeout --kill-after=5 $((DURATION + WARMUP + 180)) "$BENCH" egfanout --url "tcp://127.0.0.1:$EG" \
    --eg-key "$KEYDIR/issuer.pem" --eg-issuer "$ISSUER" --eg-audience "$AUDIENCE" \
    --subscribers "$SUBS" --topics "$TOPICS" --filters "$FILTERS" --qos 0 --payload 64 \
    --duration "$DURATION" --warmup "$WARMUP" --window "$WINDOW" \
    --broker-pid "$PID" --broker-name hubmq-eg --label "callgrind-eg-$FILTERS" \
    --at-start "callgrind_control --zero $PID >/dev/null" \
    --at-end "callgrind_control --dump=measured $PID >/dev/null" \
    --json "$WORK/egfanout.json" || { echo "load run failed" >&2; exit 1; }

deliveries=$(sed -n 's/^ *"deliveries": *\([0-9]*\).*/\1/p' "$WORK/egfanout.json")
[[ -n "$deliveries" ]] || deliveries=$(tr ',' '\n' <"$WORK/egfanout.json" | sed -n 's/.*"deliveries": *\([0-9]*\).*/\1/p' | head -n 1)
published=$(tr ',' '\n' <"$WORK/egfanout.json" | sed -n 's/.*"published": *\([0-9]*\).*/\1/p' | head -n 1)
lost=$(tr ',' '\n' <"$WORK/egfanout.json" | sed -n 's/.*"lost": *\([0-9]*\).*/\1/p' | head -n 1)
# The dump made by --at-end is the one whose header names the `measured` trigger.
dump=$(grep -l "measured" "$WORK"/callgrind.out.* 2>/dev/null | head -n 1 || true)
[[ -n "$dump" ]] || { echo "no callgrind dump found in $WORK" >&2; exit 1; }
ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dump" | head -n 1)
[[ -n "$ir" ]] || ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump" | head -n 1)
if [[ -z "$ir" || -z "$deliveries" || "$deliveries" == 0 ]]; then
    echo "could not compute: Ir='$ir' deliveries='$deliveries' (dump $dump)" >&2
    exit 1
fi
echo "hubmq Event Grid, filters $FILTERS, $SUBS subscribers: $ir instructions / $deliveries deliveries ($published publishes, lost $lost) = $((ir / deliveries)) Ir per delivery"
# callgrind_annotate lists one row per (source file, function): inlining splits a function over
# the files its code came from. Inclusive: the largest row per function (rows of one function
# overlap, so they are not summed). Self: rows summed per function (self costs add up). Rows at
# ≥ 99 % are the thread/runtime frames every instruction runs under, and are left out.
top_functions() { # inclusive|self
    local incl=no
    [[ $1 == inclusive ]] && incl=yes
    # A report only: `head` closing the pipe early (SIGPIPE under pipefail) is not a failure.
    callgrind_annotate --inclusive=$incl --threshold=100 --auto=no "$dump" 2>/dev/null | awk -v mode="$1" -v T="$ir" -v D="$deliveries" '
        match($0, /^ *[0-9,]+ \( *[0-9.]+%\)  /) {
            n = substr($0, 1, RLENGTH); sub(/\(.*/, "", n); gsub(/[ ,]/, "", n)
            rest = substr($0, RLENGTH + 1)
            if (rest ~ /^PROGRAM TOTALS/ || n + 0 >= 0.99 * T) next
            fn = substr(rest, index(rest, ":") + 1); sub(/ \[[^]]*\]$/, "", fn)
            if (mode == "self") sum[fn] += n; else if (n + 0 > sum[fn]) sum[fn] = n + 0
        }
        END { for (f in sum) printf "%d\t%5.1f%%  %7.1f Ir/delivery  %s\n", sum[f], 100 * sum[f] / T, sum[f] / D, f }' |
        sort -t$'\t' -k1,1nr | head -n "$TOP" | cut -f2- || true
}
if ((TOP > 0)) && command -v callgrind_annotate >/dev/null; then
    echo "top $TOP functions by inclusive Ir (largest row per function, thread/runtime frames left out):"
    top_functions inclusive
    echo "top $TOP functions by self Ir (summed per function):"
    top_functions self
fi
echo "inspect: callgrind_annotate --inclusive=yes $dump | head -n 40"
