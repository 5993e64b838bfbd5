#!/usr/bin/env bash
# Runs Brook's whole test suite: unit tests, integration tests with real clients (librdkafka
# through the rdkafka crate, kafka-python, kafkajs, kcat), and doc tests.
# Installs what the client tests need first: Debian's kcat, a Python venv in .venv with the
# pinned kafka-python and confluent-kafka, and the locked npm packages in tests/node.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '==> %s\n' "$*"; }

if ! command -v kcat >/dev/null 2>&1; then
  say "installing kcat (Debian package)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
  else
    echo "kcat is missing and this user cannot install it: apt-get install kcat" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the Python venv in .venv"
  python3 -m venv .venv
fi
say "installing Python test requirements"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

say "installing Node test packages (npm ci)"
(cd tests/node && npm ci --silent --no-audit --no-fund >/dev/null)

say "type-checking the fuzz targets (running them needs nightly: fuzz/run.sh)"
cargo check --quiet --locked --manifest-path fuzz/Cargo.toml

say "running cargo test"
export BROOK_TEST_PYTHON="$PWD/.venv/bin/python"
exec cargo test --workspace --locked "$@"
