#!/usr/bin/env bash
# A class on one host: LEARNERS copies of the course, in LEARNERS folders, run strict
# nbval on every notebook at the same time, ROUNDS times (`make class-check`).
#
# That is a JupyterHub on one machine (The Littlest JupyterHub): every learner has a
# copy of the repository in their home, and all share one loopback. Each copy gets its
# own preferred port from conftest.py (as a hub gives each user one, see
# helpers/netlab/_ports.py); netlab must keep one learner's client away from another
# learner's server, and every stored output must still match.
#
# The copies are of this checkout's tracked files as they are now (uncommitted changes
# included); they share this checkout's .venv (each copy's helpers/ comes first on
# PYTHONPATH, in the kernels too). The log of every failed run is kept in
# artifacts/class-check/. Exit status 0 only if every learner passed every round.
set -uo pipefail
learners=${1:-4}
rounds=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
python=$root/.venv/bin/python
[ -x "$python" ] || { echo "class-check: run 'make install' first (no $python)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/class-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
logs=$root/artifacts/class-check
mkdir -p "$logs"

for i in $(seq 1 "$learners"); do
  mkdir -p "$work/learner$i"
  (cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$work/learner$i")
done

failed=0
for round in $(seq 1 "$rounds"); do
  start=$(date +%s)
  pids=()
  for i in $(seq 1 "$learners"); do
    dir=$work/learner$i
    (cd "$dir" && env -u NETLAB_PORT -u NETLAB_PORT_FROM PYTHONPATH="$dir" \
      "$python" -m pytest -q -p no:cacheprovider --nbval --ignore=notebooks/scratch \
      --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=60 notebooks \
      > "$work/round$round-learner$i.log" 2>&1) &
    pids+=($!)
  done
  passed=0
  for i in $(seq 1 "$learners"); do
    if wait "${pids[$((i - 1))]}"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "--- round $round, learner $i failed; the end of its log:"
      grep -E "^(FAILED|E |_____)" "$work/round$round-learner$i.log" | head -40
      cp "$work/round$round-learner$i.log" "$logs/"
      echo "(the whole log: artifacts/class-check/round$round-learner$i.log)"
    fi
  done
  echo "class-check: round $round: $passed of $learners learners passed ($(($(date +%s) - start)) s)"
done
[ "$failed" -eq 0 ] && echo "class-check: all $rounds rounds green" || echo "class-check: $failed learner runs failed"
exit $((failed > 0))
