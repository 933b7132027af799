#!/usr/bin/env bash
# Tune a handful of bench cases with `tune` (MetaSchedule) and keep each case's tuned schedules
# only where they win. On the GPU machine (TVM wheels staged as docs/tuning.md says,
# PYTHONPATH=/tmp/tpat-site); runs on the CPU too with TARGET=llvm (the script's own test).
#
#   scripts/device/tune_suite.sh [case id ...]      (default: $CASES)
#
# Per case: `tune` of $MODELS/<id>.onnx (default bench/models) into $DIR/db/<id> (TRIALS trials, BUDGET seconds),
# then scripts/device/tune_compare.py times the node untuned (dlight) and tuned (the database's
# best records): the database moves to $DIR/kept/<id> when the tuned build is >= 3% faster, else it
# is dropped. A plan uses a kept database with `tpat plan/generate --tuning-db`-style request
# field "database" (docs/tuning.md). Hand-scheduled TPAT lowerings are not searched (the answer
# lists them as skipped). Results: $DIR/summary.tsv (case, tasks, trials, best tuned task us,
# untuned us, tuned us, kept) and per case <id>.tune.json / <id>.compare.json / <id>.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
TARGET=${TARGET:-sm_90}
TRIALS=${TRIALS:-64}
BUDGET=${BUDGET:-120}
LOWERING=${LOWERING:-tpat}
CASES=${CASES:-"dft gathernd_batch1 onehot_vocab onehot_axis0_fp16 gathernd_scalars_fp16"}
DIR=${DIR:-${OUT:-.gpu}/tune-suite}
PY=${PYTHON:-python3}
MODELS=${MODELS:-bench/models}  # folder of <id>.onnx (the CPU test uses small ones)
export TPAT_HOME="$PWD" PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$DIR/db" "$DIR/kept"
ids=("$@"); [ ${#ids[@]} -eq 0 ] && read -r -a ids <<< "$CASES"
printf 'case\ttasks\ttrials\tbest_task_us\tuntuned_us\ttuned_us\tkept\n' > "$DIR/summary.tsv"
rc=0
for id in "${ids[@]}"; do
  case "$id" in *[!a-z0-9_]*|'') echo "skip: bad case id '$id'"; rc=1; continue;; esac
  model="$MODELS/$id.onnx"
  [ -f "$model" ] || { echo "skip: no $model"; rc=1; continue; }
  db="$DIR/db/$id"; rm -rf "$db" "$DIR/kept/$id"
  req=$(printf '{"command":"tune","model_path":"%s","target":"%s","work_dir":"%s","trials":%d,"time_budget_s":%d,"lowering":"%s"}' \
        "$model" "$TARGET" "$db" "$TRIALS" "$BUDGET" "$LOWERING")
  start=$(date +%s)
  # MetaSchedule logs to stdout: the answer goes to its own file
  if ! "$PY" -c 'import json,sys; from tpat_bridge.tools.tune import tune; a=tune(json.loads(sys.argv[1])); json.dump(a, open(sys.argv[2], "w"))' \
       "$req" "$DIR/$id.tune.json" > "$DIR/$id.log" 2>&1; then
    echo "$id: tune failed ($DIR/$id.log)"; tail -3 "$DIR/$id.log"; rc=1
    printf '%s\t-\t-\t-\t-\t-\tno (tune failed)\n' "$id" >> "$DIR/summary.tsv"; continue
  fi
  secs=$(( $(date +%s) - start ))
  read -r tasks trials best < <("$PY" -c '
import json,sys
a=json.load(open(sys.argv[1])); ts=[t for t in a["tasks"] if "skipped" not in t]
b=[t["best_us"] for t in ts if t.get("best_us") is not None]
print(len(ts), sum(t.get("trials",0) for t in ts), "%.2f" % min(b) if b else "-")' "$DIR/$id.tune.json") \
    || { echo "$id: unreadable tune answer"; rc=1; continue; }
  if [ "$tasks" = 0 ]; then
    echo "$id: nothing to tune (hand-scheduled TPAT lowering), ${secs}s"
    printf '%s\t0\t0\t-\t-\t-\tno (nothing to tune)\n' "$id" >> "$DIR/summary.tsv"; rm -rf "$db"; continue
  fi
  if ! "$PY" scripts/device/tune_compare.py "$model" "$db" "$TARGET" "$LOWERING" > "$DIR/$id.compare.json" 2>> "$DIR/$id.log"; then
    echo "$id: compare failed ($DIR/$id.log)"; tail -3 "$DIR/$id.log"; rc=1
    printf '%s\t%s\t%s\t%s\t-\t-\tno (compare failed)\n' "$id" "$tasks" "$trials" "$best" >> "$DIR/summary.tsv"; continue
  fi
  read -r un tu win < <("$PY" -c '
import json,sys
c=json.load(open(sys.argv[1])); print(c["untuned_us"], c["tuned_us"], int(c["tuned_wins"]))' "$DIR/$id.compare.json") \
    || { echo "$id: unreadable compare answer"; rc=1; continue; }
  if [ "$win" = 1 ]; then mv "$db" "$DIR/kept/$id"; kept=yes; else rm -rf "$db"; kept=no; fi
  echo "$id: $tasks task(s), $trials trial(s) in ${secs}s; untuned $un us, tuned $tu us -> kept: $kept"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$tasks" "$trials" "$best" "$un" "$tu" "$kept" >> "$DIR/summary.tsv"
done
column -t -s $'\t' "$DIR/summary.tsv" 2>/dev/null || cat "$DIR/summary.tsv"
exit $rc
