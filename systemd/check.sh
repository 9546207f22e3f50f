#!/usr/bin/env bash
# Checks the systemd unit: `systemd-analyze verify` must pass and the offline security
# exposure (`systemd-analyze security --offline=true`) must be at most 2.5. Prints the figure.
# Usage: systemd/check.sh [path-to-hubmq-binary]   (default: target/{release,debug}/hubmq)
# The unit's ExecStart names /usr/local/bin/hubmq, the install location; verify requires the
# executable to exist, so the check runs on a copy that points at the built binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
max_exposure="2.5"

bin="${1:-}"
if [[ -z "$bin" ]]; then
    for b in "$root/target/release/hubmq" "$root/target/debug/hubmq"; do
        if [[ -x "$b" ]]; then bin="$b"; break; fi
    done
fi
[[ -n "$bin" && -x "$bin" ]] || bin="$(command -v true)"

if ! command -v systemd-analyze >/dev/null; then
    echo "systemd/check.sh: systemd-analyze not found (apt-get install systemd)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/hubmq#$bin#" "$here/hubmq.service" > "$tmp/hubmq.service"

echo "== systemd-analyze verify hubmq.service"
# verify prints problems on stderr and may exit 0 anyway: any output is a failure.
out="$(systemd-analyze verify "$tmp/hubmq.service" 2>&1)" || { echo "$out"; exit 1; }
if [[ -n "$out" ]]; then
    echo "$out"
    exit 1
fi
echo "ok"

echo "== systemd-sysusers --dry-run hubmq.sysusers.conf"
if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers --dry-run "$here/hubmq.sysusers.conf" >/dev/null 2>"$tmp/sysusers.err" \
        || { cat "$tmp/sysusers.err"; exit 1; }
    echo "ok"
fi

echo "== systemd-analyze security --offline=true hubmq.service"
report="$(systemd-analyze security --offline=true --no-pager "$tmp/hubmq.service" 2>&1)"
exposure="$(sed -n 's/.*Overall exposure level for hubmq.service: \([0-9.]*\).*/\1/p' <<<"$report")"
if [[ -z "$exposure" ]]; then
    echo "$report"
    echo "cannot read the exposure level" >&2
    exit 1
fi
echo "exposure: $exposure (max $max_exposure)"
if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
    echo "$report" | grep -v '^✓' >&2
    echo "exposure $exposure is above $max_exposure" >&2
    exit 1
fi
