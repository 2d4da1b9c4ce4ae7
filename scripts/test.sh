#!/bin/bash
# The pytest suite of `make test`, in four phases that run side by side:
#
#   quick          tests/unit tests/integration tests/voice_client, against a
#                  registry stack of its own (some tests empty the registry)
#   e2e            tests/e2e: the simulated fleet, on a registry stack of its own
#                  (its tests count the registry requests a play makes)
#   molecule       tests/molecule: every scenario but the slow one, on the default stack
#   molecule-slow  tests/molecule: the emulated arm64 scenario
#
# Most of the time of the slow phases is spent waiting (apt, SSH round trips,
# health gates), so running them together roughly halves the wall time on two
# cores. Each phase writes its own log under .cache/test-logs/; on failure
# its summary and the tail of its log are shown. Extra pytest arguments:
# PYTEST_ARGS. Exit status: non-zero when any phase failed (pytest's own code,
# so "no tests collected" (5) is a failure too).
source "$(dirname "$0")/lib.sh"
cd "$VF_ROOT"

LOGS=.cache/test-logs
PY=.venv/bin/python
QUICK_STACK_DIR=.cache/stack-test
QUICK_STACK_PORT=55421
E2E_STACK_DIR=.cache/stack-e2e
E2E_STACK_PORT=55521
mkdir -p "$LOGS"

# Every test file must belong to a phase: a new folder must not silently never run.
stray=$(find tests -name 'test_*.py' | grep -v -E '^tests/(unit|integration|voice_client|e2e|molecule)/' || true)
[[ -z $stray ]] || die "test files outside every phase of scripts/test.sh: $stray"

# What the phases share is built once, before they start (no races).
log "Preparing the test bed and the registry stacks"
scripts/bed.sh image >/dev/null
scripts/bed.sh image arm64 >/dev/null
"$PY" tools/stack.py up
VF_STACK_DIR=$QUICK_STACK_DIR VF_STACK_PORT=$QUICK_STACK_PORT "$PY" tools/stack.py up
VF_STACK_DIR=$E2E_STACK_DIR VF_STACK_PORT=$E2E_STACK_PORT "$PY" tools/stack.py up

declare -A pids
start=$(date +%s)
run_phase() {
    local name=$1
    shift
    log "Phase $name: pytest $*"
    # shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
    (env "$@" --durations=10 ${PYTEST_ARGS:-} >"$LOGS/$name.log" 2>&1) &
    pids[$name]=$!
}

run_phase quick VF_STACK_DIR=$QUICK_STACK_DIR VF_STACK_PORT=$QUICK_STACK_PORT \
    "$PY" -m pytest tests/unit tests/integration tests/voice_client
run_phase e2e VF_STACK_DIR=$E2E_STACK_DIR VF_STACK_PORT=$E2E_STACK_PORT "$PY" -m pytest tests/e2e
# The emulated arm64 scenario alone takes as long as all the others together:
# it gets a lane of its own.
run_phase molecule "$PY" -m pytest -m "not slow" tests/molecule
run_phase molecule-slow "$PY" -m pytest -m slow tests/molecule

failed=()
for name in quick e2e molecule molecule-slow; do
    if wait "${pids[$name]}"; then
        rc=0
    else
        rc=$?
    fi
    summary=$(grep -E '^(=+ .*(passed|failed|error|no tests ran).* =+|[0-9]+ (passed|failed).*)$' "$LOGS/$name.log" | tail -1)
    if ((rc == 0)); then
        printf '\033[32mphase %-13s ok\033[0m   %s\n' "$name" "$summary"
    else
        printf '\033[31mphase %-13s FAILED (pytest exit %d)\033[0m   %s\n' "$name" "$rc" "$summary"
        ((rc == 5)) && echo "  (pytest collected no tests: a phase that tests nothing is a failure)"
        echo "  --- last lines of $LOGS/$name.log ---"
        tail -60 "$LOGS/$name.log" | sed 's/^/  /'
        failed+=("$name")
    fi
done
printf 'test phases finished in %ds\n' $(($(date +%s) - start))
((${#failed[@]} == 0)) || die "failed phases: ${failed[*]} (logs in $LOGS/)"
