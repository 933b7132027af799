#!/usr/bin/env bash
# CPU proof of `tpat tune` through TVM's RPC tracker (make tune-rpc-check): a tracker and two RPC
# servers on 127.0.0.1 (key tpat-cpu), started as on the GPU machine by `python -m
# tpat_bridge.tools.rpc_server` (TVM's server, CUDA left uninitialised before its per-session fork),
# then `tpat tune` of three plugins of tests/fixtures/models/plugins_symbolic.onnx (BitwiseAnd/Xor/
# Not, symbolic dims: tuned at their reference cases' largest binding) for the llvm target
# (TPAT_TUNE_TARGET=llvm), timed on the two servers (--rpc-workers 2). Fails unless, for every
# plugin: candidates were measured through the tracker (trials > 0, runner rpc), the servers were
# probed, the default schedule was timed through the same RPC runner and recorded in the database
# (one record more than the candidates, in database_ or rejected_tuning_record.json), and a best
# candidate was recorded and compared with it (kept or dropped); and the servers served at least
# one session per timing. Logs in $LOGS (default a temp folder, printed). Small on purpose: TRIALS
# (default 4) per plugin, population 16.
set -uo pipefail
cd "$(dirname "$0")/.."
TPAT=${TPAT:-.build/debug/tpat}
PY=${PY:-.venv/bin/python}
TRIALS=${TRIALS:-4}
LOGS=${LOGS:-$(mktemp -d /tmp/tpat-tune-rpc.XXXXXX)}
mkdir -p "$LOGS"
[ -x "$TPAT" ] || { echo "error: $TPAT not built (swift build)" >&2; exit 2; }
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null; done; wait 2>/dev/null; }  # each a process group (setsid): TVM's popen_worker children too
trap cleanup EXIT
setsid "$PY" -m tvm.exec.rpc_tracker --host 127.0.0.1 --port "$port" --port-end $((port + 1)) > "$LOGS/tracker.log" 2>&1 &
pids+=($!)
for k in 0 1; do
  PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" setsid "$PY" -m tpat_bridge.tools.rpc_server --tracker "127.0.0.1:$port" \
    --key tpat-cpu --host 127.0.0.1 --port $((port + 10 + 40 * k)) --port-end $((port + 49 + 40 * k)) > "$LOGS/server-$k.log" 2>&1 &
  pids+=($!)
done
# wait (60 s at most) until the tracker lists both servers
for _ in $(seq 60); do
  n=$("$PY" -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port "$port" 2>/dev/null | grep -c 'server:tpat-cpu')
  [ "${n:-0}" -ge 2 ] && break
  sleep 1
done
"$PY" -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port "$port" > "$LOGS/query.txt" 2>&1
[ "$(grep -c 'server:tpat-cpu' "$LOGS/query.txt")" -ge 2 ] || { echo "error: the tracker lists no 2 servers ($LOGS)" >&2; cat "$LOGS/query.txt"; exit 1; }
out="$LOGS/out"
TPAT_HOME="$PWD" "$TPAT" generate tests/fixtures/models/plugins_symbolic.onnx --trt 11 --nodes band_a,bxor,bnot -o "$out" -q > "$LOGS/generate.log" 2>&1 \
  || { echo "error: generate failed ($LOGS/generate.log)" >&2; tail -5 "$LOGS/generate.log"; exit 1; }
t0=$(date +%s)
TPAT_HOME="$PWD" TPAT_TUNE_TARGET=llvm TPAT_TUNE_POPULATION=16 \
  "$TPAT" tune "$out" --trials "$TRIALS" --rpc-tracker "127.0.0.1:$port" --rpc-key tpat-cpu --rpc-workers 2 > "$LOGS/tune.log" 2>&1
rc=$?
echo "tpat tune: exit $rc, wall $(( $(date +%s) - t0 )) s" | tee -a "$LOGS/summary.txt"
grep -E '^(Bitwise|tune: .*(best|not searched|bound))' "$LOGS/tune.log" | tee -a "$LOGS/summary.txt"
fail=0
[ $rc -eq 0 ] || fail=1
plugins=$(grep -c '^Bitwise.*task(s)' "$LOGS/tune.log")
measured=$(grep -E '^Bitwise.*task\(s\), [1-9][0-9]* trials.*runner rpc \(key tpat-cpu' "$LOGS/tune.log" | grep -c .)
[ "$plugins" -eq 3 ] && [ "$measured" -eq 3 ] || fail=1
echo "plugins tuned: $plugins, with candidates measured through the tracker: $measured (logs: $LOGS)" | tee -a "$LOGS/summary.txt"
probed=$(grep -c "RPC probe: 2 server(s) under key 'tpat-cpu' allocated on cpu:0" "$LOGS/tune.log")
defaults=$(grep -cE "^tune: [a-z_0-9]+: default schedule [0-9.]+ us \(runner rpc \(key tpat-cpu at 127.0.0.1:$port\)\), recorded" "$LOGS/tune.log")
bests=$(grep -cE '^tune: [a-z_0-9]+: best [0-9.]+ us vs default [0-9.]+ us -> (kept|dropped)' "$LOGS/tune.log")
echo "servers probed: $probed, defaults timed through RPC and recorded: $defaults, best candidate vs default: $bests (of 3 each)" | tee -a "$LOGS/summary.txt"
[ "$probed" -eq 3 ] && [ "$defaults" -eq 3 ] && [ "$bests" -eq 3 ] || fail=1
# the databases: per plugin one record per candidate plus the default's (kept or rejected)
for db in "$out"/tuning/*/; do
  n=$(cat "$db"database_tuning_record.json "$db"rejected_tuning_record.json 2>/dev/null | grep -c .)
  p=$(basename "$db"); t=$(grep -E "^$p: " "$LOGS/tune.log" | sed -E 's/.* task\(s\), ([0-9]+) trials.*/\1/')
  echo "$p: $n record(s) for ${t:-?} candidate(s) + the default" | tee -a "$LOGS/summary.txt"
  [ -n "$t" ] && [ "$n" -eq $((t + 1)) ] || fail=1
done
# every timing (probe, candidates, defaults) was a session on one of the two servers
candidates=$(grep -E '^Bitwise.*task\(s\)' "$LOGS/tune.log" | sed -E 's/.* task\(s\), ([0-9]+) trials.*/\1/' | awk '{s += $1} END {print s + 0}')
sessions=$(cat "$LOGS"/server-*.log | grep -c 'start serving')
used=$(for k in 0 1; do grep -q 'start serving' "$LOGS/server-$k.log" && echo "$k"; done | grep -c .)
echo "sessions served: $sessions (candidates $candidates, 3 defaults, 3 probes of 2), by $used of 2 servers" | tee -a "$LOGS/summary.txt"
[ "$sessions" -ge $((candidates + 3 + 6)) ] && [ "$used" -eq 2 ] || fail=1
[ $fail -eq 0 ] && echo "tune-rpc-check: PASS" || echo "tune-rpc-check: FAIL (see $LOGS/tune.log)"
exit $fail
