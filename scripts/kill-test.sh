#!/usr/bin/env bash
# Kill anywhere, resume exactly (issue 15): runs each paper example on a tiny world once without
# interruption, then again with SIGKILL at random moments, resuming after each kill, and checks
# that the resumed run's final weights, logs, descriptors, pictures and reports equal the
# uninterrupted run's (scripts/compare_runs.py) and that every run that was not killed succeeded.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/kill-test.sh [--kills N] [--seed S] [--slow-ms MS] [--devices N] [--out DIR] [EXAMPLE ...]

Runs EXAMPLE (default: dark_side nocplace similarity_minmax) on a tiny world (8 test places,
8 training places, 96×72 renders) with tiny schedules, once straight through and once killed with
SIGKILL at N random moments (default 20), resuming after each kill, then compares the two output
folders (scripts/compare_runs.py). Checkpoint writes are slowed by MS milliseconds per file
(NIGHTVISION_SLOW_CHECKPOINT_MS, default 150) so that some kills land inside them.

  --kills N     kills per example (default 20)
  --seed S      seed of the kill moments (default 1)
  --slow-ms MS  delay per checkpoint file, 0 for none (default 150)
  --devices N   data-parallel devices of the examples (default 1; docs/SCALING.md)
  --out DIR     working folder (default target/kill-test)
  -h, --help    this text

Exit status 0 when every example resumed to the same result, 1 otherwise.
EOF
}

KILLS=20
SEED=1
SLOW_MS=150
DEVICES=1
OUT=target/kill-test
EXAMPLES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --kills) KILLS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --slow-ms) SLOW_MS="$2"; shift 2 ;;
    --devices) DEVICES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -*) echo "kill-test: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) EXAMPLES+=("$1"); shift ;;
  esac
done
[[ ${#EXAMPLES[@]} -gt 0 ]] || EXAMPLES=(dark_side nocplace similarity_minmax)

cd "$(dirname "$0")/.."
ROOT=$(pwd)
cargo build -q --examples --locked
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export NIGHTVISION_SLOW_CHECKPOINT_MS="$SLOW_MS"
export RUST_LOG="${RUST_LOG:-warn}"

WORLD="$OUT/world"
echo '{"width": 96, "height": 72, "supersample": 1, "places": 8, "train_places": 8,
  "places_per_street": 4, "db_views": 2, "query_views": 1, "night_query_views": 1,
  "tuple_views": 2, "cosplace_views": 4, "gan_images": 8}' > "$OUT/world.json"
"$BIN/synthetic_places" --out "$WORLD" --overwrite --no-progress --config "$OUT/world.json" > /dev/null

args_for() {
  case "$1" in
    dark_side) echo "--gan-iterations 6 --gan-batch 1 --crop 32 --ngf 4 --blocks 1 --epochs 2 --tuples 2 --image-size 64" ;;
    nocplace) echo "--gan-iterations 6 --crop 32 --ngf 4 --blocks 1 --patches 16 --day-iterations 4 --night-iterations 4 --batch 2 --image-size 64" ;;
    similarity_minmax) echo "--train-darkening --d-iterations 6 --d-batch 1 --crop 32 --epochs 2 --tuples 2 --image-size 64" ;;
    *) echo "kill-test: no tiny schedule for example $1" >&2; exit 2 ;;
  esac
}

# A seeded kill moment in milliseconds, uniform in [100, max]: rand_ms SEED ATTEMPT MAX.
rand_ms() {
  python3 -c "import random,sys; r=random.Random(int(sys.argv[1]) * 1000003 + int(sys.argv[2])); print(r.randint(100, max(101, int(sys.argv[3]))))" "$@"
}

status=0
for ex in "${EXAMPLES[@]}"; do
  read -r -a ARGS <<< "$(args_for "$ex") --devices $DEVICES"
  ref="$OUT/$ex-reference"
  res="$OUT/$ex-resumed"
  rm -rf "$ref" "$res"
  t0=$(date +%s%N)
  "$BIN/$ex" --data "$WORLD" --out "$ref" "${ARGS[@]}" > "$OUT/$ex-reference.log" 2>&1 || {
    echo "kill-test: $ex failed without any kill (log: $OUT/$ex-reference.log)"; exit 1; }
  run_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  # Kill moments uniform over the length of what is left to run: the whole run at first; after a
  # resumed run that finished before its moment, the length of that run (a resumed run has less
  # left to do). Up to 3 attempts per wanted kill.
  limit=$run_ms
  kills=0; completions=0; attempt=0; killed_at=()
  while [[ $kills -lt $KILLS && $attempt -lt $((3 * KILLS)) ]]; do
    attempt=$((attempt + 1))
    ms=$(rand_ms "$SEED" "$attempt" "$limit")
    log="$OUT/$ex-attempt-$attempt.log"
    t1=$(date +%s%N)
    "$BIN/$ex" --data "$WORLD" --out "$res" "${ARGS[@]}" > "$log" 2>&1 &
    pid=$!
    sleep "$(python3 -c "print($ms / 1000)")"
    if kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      kills=$((kills + 1)); killed_at+=("$ms")
    else
      if wait "$pid"; then
        completions=$((completions + 1))
        limit=$(( ($(date +%s%N) - t1) / 1000000 ))
      else
        echo "kill-test: $ex attempt $attempt failed on its own after a resume (log: $log)"
        tail -5 "$log"; status=1; continue 2
      fi
    fi
  done
  # The last run: no kill.
  "$BIN/$ex" --data "$WORLD" --out "$res" "${ARGS[@]}" > "$OUT/$ex-final.log" 2>&1 || {
    echo "kill-test: $ex failed resuming after the kills (log: $OUT/$ex-final.log)"; tail -5 "$OUT/$ex-final.log"; status=1; continue; }
  echo "== $ex: run $run_ms ms; $kills kills at ms ${killed_at[*]}; $completions runs finished before their kill moment"
  if python3 scripts/compare_runs.py "$ref" "$res"; then
    echo "== $ex: resumed run equals the uninterrupted run"
  else
    echo "== $ex: DIFFERENT"; status=1
  fi
  [[ $kills -ge $KILLS ]] || { echo "kill-test: only $kills of $KILLS kills landed for $ex"; status=1; }
done
exit $status
