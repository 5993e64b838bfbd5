#!/usr/bin/env bash
# Builds every cargo-fuzz target of brook-protocol and runs each for N seconds (default 30;
# the first argument overrides), one target at a time, single-threaded. Exits non-zero if
# any target finds a crash (panic, abort, sanitizer report), a hang (-timeout), or an
# allocation past -malloc_limit_mb / -rss_limit_mb.
#
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). The fuzz crate also type-checks on stable
# (`cargo check --manifest-path fuzz/Cargo.toml`); only the instrumented build needs nightly.
#
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 300        # 5 min per target
#   FUZZ_SANITIZER=none fuzz/run.sh   # without AddressSanitizer (if its runtime is missing)
#   FUZZ_TARGETS="request validate" fuzz/run.sh 60
#
# Corpora grow in fuzz/corpus/<target>/ (seeded from the committed fuzz/seeds/<target>/);
# crashing inputs land in fuzz/artifacts/<target>/ and replay with
# `cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`. Logs: fuzz/target/logs/.
set -euo pipefail

cd "$(dirname "$0")"
secs="${1:-30}"
sanitizer="${FUZZ_SANITIZER:-address}"
read -r -a targets <<< "${FUZZ_TARGETS:-frame request batch validate decompress}"

# Longest input per target: frames and requests stay small; batches to decompress need room.
max_len() {
    case "$1" in
        validate | decompress) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

cargo +nightly fuzz build --sanitizer "$sanitizer"

mkdir -p target/logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="target/logs/$t.log"
    echo "== $t: ${secs}s"
    if cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -max_len="$(max_len "$t")" -print_final_stats=1 > "$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
        grep -E '^stat::number_of_executed_units' "$log" || true
    else
        echo "!! $t FAILED (log: fuzz/$log)"
        tail -n 60 "$log"
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "fuzzing found problems in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${secs}s without a crash"
