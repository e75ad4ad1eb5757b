#!/usr/bin/env bash
# Builds METCON and starts it on embedded defaults with demo data: the cloud API with its
# embedded store and broker, and a simulated scale with an enrolled edge agent at Receiving.
# Nothing to install first but the Rust toolchain; data lives in ./data (delete it to reseed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p metcon-cloud -p metcon-edge -p metcon-scale-sim
exec target/release/metcon-cloud demo "$@"
