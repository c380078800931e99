#!/usr/bin/env bash
# Every benchmark in bench/, one after the other, each with options that bound it to a few minutes
# on 2 cores (`make bench`). Short runs: they show that every script works end to end and give rough
# figures; the documented figures (docs/bench/) come from each script's own, longer, defaults.
#
#   bench/run_all.sh [--dry-run] [SCRIPT ...]    --dry-run: print the commands; SCRIPT: only these
#
# PYTHON (default .venv/bin/python) runs the scripts; outputs kept by the scripts go under
# BENCH_OUT (default a new bench/out/make-bench/<time> each run, so no earlier run is reused);
# BENCH_TIMEOUT (seconds, default 900) stops any one script that runs past its bound.
# Not benchmarks, so not here: shared.py and abc_tools.py (helpers), readme_figures.py (draws the
# README's piano rolls from the demo run).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
OUT=${BENCH_OUT:-bench/out/make-bench/$(date +%Y%m%d-%H%M%S)}
LIMIT=${BENCH_TIMEOUT:-900}

# One line a benchmark: the script and its bounding options.
BENCHES=(
  "bench_foundation.py --max-epochs 2 --json $OUT/foundation.json"
  "bench_extract.py --abc-sample 20"
  "bench_scale.py --files 50"
  "bench_train_scale.py --files 20 --steps 5 --work $OUT/train_scale"
  "bench_trainer.py --epochs 1 --work $OUT/trainer"
  "bench_sampling.py --count 2 --length 200 --repeat 1"
  "bench_stack.py --steps 3 --repeats 1"
  "heatmap_record.py --tokens 500"
  "bench_audio.py --repeats 1"
  "bench_compare.py --quick"
  "bench_grid.py --quick"
  "bench_rhythm.py --epochs 1 --max-minutes 0.5 --choice-minutes 0.5 --count 2 --length 200 --page-count 1 --page-length 100 --work $OUT/rhythm"
  "bench_learning.py nocturnes abc --max-minutes 0.2 --minutes 0.5 --work $OUT/learning"
  "bench_abc.py --quick --count 5 --work $OUT/abc"
  "compare_abc_readers.py --limit 100"
  "bench_trainer.py --corpus nottingham --steps 10 --epochs 1 --work $OUT/trainer"
  "bench_polyphonic.py --corpora jsb --minutes 1 --work $OUT/polyphonic"
  "bench_finetune.py --base-minutes 1 --minutes 0.3 --folds 1 --work $OUT/finetune"
  "bench_listen.py --work $OUT/listen --train-args=--epochs=2"
)

for f in bench/bench_*.py; do  # a new bench_*.py that nobody listed above
  [[ " ${BENCHES[*]} " == *" $(basename "$f") "* ]] || echo "warning: $f is not in bench/run_all.sh" >&2
done

dry=0
only=()
for arg in "$@"; do
  case $arg in
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) only+=("${arg%.py}.py") ;;
  esac
done

failed=()
[ $dry = 1 ] || mkdir -p "$OUT"
for line in "${BENCHES[@]}"; do
  read -ra words <<< "$line"
  script=${words[0]}
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $script "* ]]; then continue; fi
  cmd=(timeout "$LIMIT" "$PY" "bench/$script" "${words[@]:1}")
  if [ $dry = 1 ]; then echo "${cmd[*]}"; continue; fi
  echo
  echo "==================== $script  ($(date +%H:%M:%S))"
  echo "\$ ${cmd[*]}"
  start=$SECONDS
  if "${cmd[@]}"; then
    echo "-------------------- $script: done in $((SECONDS - start)) s"
  else
    rc=$?
    echo "-------------------- $script: FAILED (exit $rc$([ $rc = 124 ] && echo ", past ${LIMIT} s")) after $((SECONDS - start)) s"
    failed+=("$script")
  fi
done

if [ $dry = 1 ]; then exit 0; fi
echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all benchmarks ran; outputs under $OUT"
