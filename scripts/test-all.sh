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
# Headless Chromium and its WebDriver for the web UI's browser tests (tests/tests/web_ui.rs).
{ command -v chromium >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromium ]; } || need_apt+=(chromium)
{ command -v chromedriver >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromedriver ]; } || need_apt+=(chromium-driver)
# cmake builds the MongoDB stand-in's storage engine (WiredTiger), below.
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)

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

# The MongoDB half of the store contract suite (and the API tests on MongoDB below) runs
# against METCON_TEST_MONGODB_URI when given (e.g. a real mongod replica set), else against
# SecantusDB's Rust daemon, a MongoDB wire-protocol server that each test starts on a free
# port with a temporary folder. It is GPL-licensed: installed as a separate program, never
# linked into METCON. Built once (a few minutes) and cached.
if [ -z "${METCON_TEST_MONGODB_URI:-}" ]; then
  SECANTUS_ROOT="$HOME/.cache/metcon-ci/secantus"
  if [ ! -x "$SECANTUS_ROOT/bin/secantusd-rs" ]; then
    cargo install secantus-mdb --version 0.5.3-beta.196 --locked --ignore-rust-version --root "$SECANTUS_ROOT"
  fi
  export METCON_SECANTUSD="$SECANTUS_ROOT/bin/secantusd-rs"
fi
# A missing MongoDB fails the MongoDB tests instead of skipping them.
export METCON_TEST_REQUIRE_MONGODB=1

# The S3 photo store's tests run against s3s-fs, a real S3-compatible server that checks
# SigV4 signatures, started by the tests on a free port (0.14.1: later versions need a newer
# compiler). Built once and cached; a missing one fails the S3 tests instead of skipping them.
if [ -z "${METCON_TEST_S3S_FS:-}" ]; then
  S3S_ROOT="$HOME/.cache/metcon-ci/s3s"
  if [ ! -x "$S3S_ROOT/bin/s3s-fs" ]; then
    cargo install s3s-fs --version 0.14.1 --locked --features binary --root "$S3S_ROOT"
  fi
  export METCON_TEST_S3S_FS="$S3S_ROOT/bin/s3s-fs"
fi
export METCON_TEST_REQUIRE_S3=1

# A clean clone builds once: incremental artifacts would only take disk space.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Libraries, binaries and integration tests; the benches (harness = false) are run by hand,
# see docs/benchmarks.md.
cargo nextest run --workspace --lib --bins --tests --no-fail-fast "$@"
# The API tests that go through the server only (analytics included) once more, on MongoDB.
# Selected from the whole workspace's build (a `-p metcon-cloud` build would unify features
# differently and compile every dependency a second time).
METCON_TEST_STORE=mongodb cargo nextest run --workspace --lib --bins --tests --no-fail-fast \
  -E 'package(metcon-cloud) & (binary(reports) | binary(reports_access) | binary(batch_lifecycle) | binary(bad_input) | binary(authorization_matrix) | binary(photos) | binary(user_admin_audit))'
# nextest does not run doc tests.
cargo test --workspace --doc
