#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) one after another, each for a time or a
# number of runs, starting from fuzz/corpus/<target>/ (the committed seed-* files plus whatever
# earlier runs added there, which git ignores).
#
#   fuzz/run.sh 60                 # 60 s per target
#   fuzz/run.sh -runs=1000         # 1 000 inputs per target (a smoke run)
#   fuzz/run.sh 300 admin_json     # one target
#
# FUZZ_SANITIZER=address builds with AddressSanitizer (cargo-fuzz's default); the default here
# is `none`: the crate forbids unsafe code, and without ASan a target runs 2-3x more inputs.
# FUZZ_OPTIONAL=1 turns a missing nightly toolchain or cargo-fuzz into a skip (exit 0).
# A crash stops the run with libFuzzer's exit status; the input is in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    echo "usage: fuzz/run.sh SECONDS|-runs=N [TARGET...]" >&2
    exit 2
}

limit="${1:-60}"
[ "$#" -gt 0 ] && shift
case "$limit" in
    -runs=*) [[ "${limit#-runs=}" =~ ^[0-9]+$ ]] || usage; flag="$limit" ;;
    *) [[ "$limit" =~ ^[0-9]+$ ]] || usage; flag="-max_total_time=$limit" ;;
esac

missing=""
cargo +nightly --version >/dev/null 2>&1 || missing="the nightly toolchain (rustup toolchain install nightly)"
[ -z "$missing" ] && ! cargo +nightly fuzz --version >/dev/null 2>&1 \
    && missing="cargo-fuzz (cargo install cargo-fuzz)"
if [ -n "$missing" ]; then
    if [ "${FUZZ_OPTIONAL:-0}" = 1 ]; then
        echo "fuzz: skipped, $missing is not installed"
        exit 0
    fi
    echo "fuzz: $missing is not installed" >&2
    exit 1
fi

sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build of all targets up front, so that the time limits below are fuzzing time only.
cargo +nightly fuzz build -s "$sanitizer"
for target in "${targets[@]}"; do
    echo "== fuzz $target ($flag)"
    mkdir -p "corpus/$target"
    # -print_final_stats: executions and exec/s for FUZZING.md.
    cargo +nightly fuzz run -s "$sanitizer" "$target" -- "$flag" -print_final_stats=1
done
