#!/usr/bin/env bash
# fuzz.sh — the long fuzzing campaign over every parser of user-controlled bytes (issue 15).
#
# usage: scripts/fuzz.sh [--cases N] [--seed S] [--crates "a b …"] [--findings DIR] [--help]
#
# Runs the seeded mutation fuzz tests of crates/*/tests/fuzz.rs (the same tests `cargo test`
# runs with 10,000 cases per parser) with N cases per parser (default 200000) from base seed S
# (default 0xCA3FA16, decimal or 0x…; every parser derives its own stream from it, and the tests
# use 0x15F022, so the campaign explores other cases), one crate after the other (one cargo
# command at a time), and prints per parser the cases run, the cases the parser accepted, the
# findings and the seconds, then the totals. A finding is a panic, a property violation (an
# error that does not name its file, an inconsistent result), a case slower than 2 s or one
# that allocates more than 16 MiB plus a small multiple of its input; the input of each is
# written to DIR (default target/fuzz-findings; this run's summary lines go to
# DIR/summary.log) as <parser>-<seed>-<case>.bin, and any single case replays with
#   NIGHTVISION_FUZZ_SEED=<base seed> NIGHTVISION_FUZZ_CASE=<case> \
#     cargo test -p <crate> --test fuzz -- --nocapture <test>
# Exit status: 0 without findings, 1 with findings, 2 when a test binary crashed (an abort: the
# refused allocation's case is printed just before it).
#
# Crates and parsers:
#   vpr-eval           npy, npz-gt, pickle-gnd, vpr-name, image-lists
#   nightvision-core   safetensors, pth, checkpoint-latest, checkpoint-config, checkpoint-record
#   metric-learning    train-pickle, whitening
#   anchor-mining      cosplace-lists
#   synthetic-places   world-config
set -uo pipefail

cases=200000
seed=0xCA3FA16
crates="vpr-eval nightvision-core metric-learning anchor-mining synthetic-places"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
findings="$root/target/fuzz-findings"

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        --cases) cases="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --crates) crates="$2"; shift 2 ;;
        --findings) findings="$2"; shift 2 ;;
        *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$root"
mkdir -p "$findings"
summary="$findings/summary.log"
: >"$summary"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "fuzz campaign: $cases cases per parser, base seed $seed, findings in $findings"
# build first, so that the times below are the campaign's
for c in $crates; do
    cargo test -q -p "$c" --test fuzz --no-run 2>&1 | grep -v '^\s*$' || true
done

status=0
start=$SECONDS
for c in $crates; do
    echo "== $c"
    t0=$SECONDS
    NIGHTVISION_FUZZ_CASES="$cases" NIGHTVISION_FUZZ_SEED="$seed" \
        NIGHTVISION_FUZZ_FINDINGS="$findings" RUST_BACKTRACE=0 \
        cargo test -q -p "$c" --test fuzz -- --nocapture --test-threads=1 fuzz_ >"$log" 2>&1
    rc=$?
    grep -oE 'fuzz-summary .*' "$log" | tee -a "$summary"
    grep -E '^  case |fuzz: refused' "$log" | cut -c1-300 | head -20
    if [[ $rc -ne 0 ]]; then
        if grep -q 'cases failed' "$log"; then
            [[ $status -eq 0 ]] && status=1
        else
            echo "!! $c: the test binary failed without a fuzz report (crash?):"
            tail -20 "$log"
            status=2
        fi
    fi
    echo "   ($((SECONDS - t0)) s)"
done

echo
echo "parser                 cases   accepted  findings  seconds"
awk '
    /^fuzz-summary/ {
        delete f
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        printf "%-18s %10s %10s %9s %8s\n", f["parser"], f["cases"], f["accepted"], f["findings"], f["seconds"]
        tc += f["cases"]; tf += f["findings"]
    }
    END { printf "%-18s %10d %10s %9d\n", "total", tc, "", tf }
' "$summary"
echo "campaign: $((SECONDS - start)) s, exit status $status"
exit $status
