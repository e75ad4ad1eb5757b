#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine, installing what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# A real broker for the edge and ingest tests, its control tool (dynamic security), and
# openssl for the tests' certificate authorities.
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_ctrl >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian's mosquitto package starts a system broker on port 1883; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto >/dev/null 2>&1 || true; fi

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# Libraries, binaries and integration tests; the benches (harness = false) are run by hand,
# see docs/benchmarks.md.
cargo nextest run --workspace --lib --bins --tests --no-fail-fast "$@"
# nextest does not run doc tests.
cargo test --workspace --doc
