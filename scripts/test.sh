#!/usr/bin/env bash
# The whole check CI runs: installs what the suite needs (idempotent, and quick when it is
# already there), then formatting, clippy and every test of the workspace (unit tests and the
# end-to-end suite, which starts the real broker and drives it with rumqttc, paho-mqtt and
# MQTT.js). Exits non-zero on the first failing step.
#
#   HUBMQ_SKIP_INSTALL=1   skip the install step (offline machines that are already set up)
#   HUBMQ_TEST_THREADS=N   tests run at once (default 4: e2e tests mostly wait on sockets)
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n==> %s (t=%ss)\n' "$*" "$((SECONDS - started))"; }

# Root runs apt directly; others need passwordless sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

install_deps() {
    local apt_missing=()
    dpkg -s mosquitto >/dev/null 2>&1 || apt_missing+=(mosquitto mosquitto-clients)
    command -v python3 >/dev/null 2>&1 || apt_missing+=(python3)
    # tests/e2e/ops.rs: a real Prometheus (and promtool), systemd-analyze for the unit check.
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
    command -v systemd-analyze >/dev/null 2>&1 || apt_missing+=(systemd)
    # Test-time keys and certificates (auth unit tests, TLS and Event Grid e2e tests).
    command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
    if [ -f tests/clients/requirements.txt ]; then
        python3 -m pip --version >/dev/null 2>&1 || apt_missing+=(python3-pip python3-venv)
    fi
    if [ -f tests/clients/package.json ] && ! command -v npm >/dev/null 2>&1; then
        apt_missing+=(nodejs npm)
    fi
    if [ ${#apt_missing[@]} -gt 0 ]; then
        step "apt-get install ${apt_missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
    fi

    # paho-mqtt for tests/clients/paho_client.py, into whatever `python3` the tests will run.
    # A system Python that refuses pip installs (PEP 668) gets a project venv at .venv instead.
    if [ -f tests/clients/requirements.txt ]; then
        [ -x .venv/bin/python3 ] && export PATH="$PWD/.venv/bin:$PATH"
        if ! python3 -m pip install -q --disable-pip-version-check -r tests/clients/requirements.txt 2>/tmp/hubmq-pip.err; then
            if grep -q externally-managed /tmp/hubmq-pip.err; then
                step "python venv at .venv (system Python is externally managed)"
                python3 -m venv .venv
                export PATH="$PWD/.venv/bin:$PATH"
                python3 -m pip install -q --disable-pip-version-check -r tests/clients/requirements.txt
            else
                cat /tmp/hubmq-pip.err >&2
                return 1
            fi
        fi
    fi

    # MQTT.js for tests/clients/mqttjs_client.js: `npm ci` only when the lock changed.
    if [ -f tests/clients/package.json ]; then
        local stamp=tests/clients/node_modules/.package-lock.json
        if [ ! -f "$stamp" ] || { [ -f tests/clients/package-lock.json ] && [ tests/clients/package-lock.json -nt "$stamp" ]; }; then
            step "npm install in tests/clients"
            if [ -f tests/clients/package-lock.json ]; then
                (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
            else
                (cd tests/clients && npm install --no-audit --no-fund --loglevel=error)
            fi
        fi
    fi

    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            step "rustup component add $component"
            rustup component add "$component"
        fi
    done
}

if [ "${HUBMQ_SKIP_INSTALL:-0}" != 1 ]; then
    step "install test dependencies"
    install_deps
fi
# Dependencies are installed now, so a missing client library is a failure, not a skip
# (tests/e2e/clients.rs reads CI).
export CI="${CI:-1}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

threads="${HUBMQ_TEST_THREADS:-4}"
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --workspace --no-fail-fast --test-threads "$threads" \
        --failure-output final --status-level fail --final-status-level slow
    step "doc tests"
    cargo test --workspace --doc --quiet
else
    step "cargo test"
    cargo test --workspace --no-fail-fast -- --test-threads "$threads"
fi

step "all checks passed"
