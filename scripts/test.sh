#!/bin/bash
# The pytest suite of `make test`, in six phases on four lanes that run side by side
# (the phases of one lane run one after the other):
#
#   lane 1  quick          tests/unit tests/integration tests/voice_client, against a
#                          registry stack of its own (some tests empty the registry)
#           e2e-own        the end-to-end modules on fleets of their own (marker
#                          own_fleet), then on that same stack
#   lane 2  e2e            the other end-to-end modules: the session's simulated fleet,
#                          on a registry stack of its own (its tests count the
#                          registry requests a play makes)
#   lane 3  molecule       tests/molecule: every scenario but the heavy ones
#   lane 4  molecule-heavy tests/molecule: the heavy ones (marker heavy: the emulated
#                          arm64 scenario, site, the legacy adoption); the arm64
#                          scenario last, on the image built in the background
#
# Side by side the lanes keep both cores busy (96 % of the time in a sampled
# fresh-clone run, about 40 % of it in the devices' containers), so the suite
# lasts as long as its CPU work: each log ends with the tests that cost the most
# controller CPU as well as the slowest ones, and the lanes are balanced by hand
# on those figures.
# Lint (make lint) runs first, beside the preparation of the test bed and the
# registry stacks; a lint failure stops the run before any phase starts.
# Each phase writes its own log under .cache/test-logs/; on failure its summary
# and the tail of its log are shown. Extra pytest arguments: PYTEST_ARGS. Exit
# status: non-zero when any phase failed (pytest's own code, so "no tests
# collected" (5) is a failure too).
source "$(dirname "$0")/lib.sh"
cd "$VF_ROOT"

LOGS=.cache/test-logs
PY=.venv/bin/python
QUICK_STACK_DIR=$VF_ROOT/.cache/stack-test
QUICK_STACK_PORT=55421
E2E_STACK_DIR=$VF_ROOT/.cache/stack-e2e
E2E_STACK_PORT=55521
mkdir -p "$LOGS"

# Every test file must belong to a phase: a new folder must not silently never run.
stray=$(find tests -name 'test_*.py' | grep -v -E '^tests/(unit|integration|voice_client|e2e|molecule)/' || true)
[[ -z $stray ]] || die "test files outside every phase of scripts/test.sh: $stray"

# Lint (make lint) runs beside the preparation below: it needs only the venv,
# and on a fresh machine the base image's debootstrap waits mostly on the
# network and the disk. A lint failure still stops the run before any test.
log "Linting (make lint, log: $LOGS/lint.log) beside the preparation"
make -s -o setup lint >"$LOGS/lint.log" 2>&1 &
lint=$!

# What the phases share is built once, before they start (no races).
log "Preparing the test bed and the registry stacks"
scripts/bed.sh image >/dev/null
"$PY" tools/stack.py up
VF_STACK_DIR=$QUICK_STACK_DIR VF_STACK_PORT=$QUICK_STACK_PORT "$PY" tools/stack.py up
# The e2e lane's registry starts empty: its tests count the rows a play writes and roll
# test versions out, and the rows an earlier `make test` left would be taken for this run's.
VF_STACK_DIR=$E2E_STACK_DIR "$PY" tools/stack.py down
rm -rf "$E2E_STACK_DIR/pgdata"
VF_STACK_DIR=$E2E_STACK_DIR VF_STACK_PORT=$E2E_STACK_PORT "$PY" tools/stack.py up
if ! wait "$lint"; then
    tail -40 "$LOGS/lint.log" >&2
    die "lint failed (full log: $LOGS/lint.log); no test ran"
fi
tail -3 "$LOGS/lint.log"
# The aarch64 image takes minutes of emulated debootstrap on a fresh machine (5m49s here), and
# only the heavy lane's emulated scenario runs on it: it is built in the background, beside
# the lanes, and that scenario runs last in its lane (bed.sh's lock makes it wait for this
# build).
scripts/bed.sh image arm64 >"$LOGS/bed-arm64.log" 2>&1 &
bed_arm64=$!

start=$(date +%s)
# phase NAME ENV... COMMAND...: one pytest run into its log; its exit status into NAME.rc.
phase() {
    local name=$1 rc=0
    shift
    log "Phase $name: pytest $*"
    # shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
    env "$@" --durations=25 ${PYTEST_ARGS:-} >"$LOGS/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$LOGS/$name.rc"
}
rm -f "$LOGS"/*.rc

quick_env=(VF_STACK_DIR="$QUICK_STACK_DIR" VF_STACK_PORT=$QUICK_STACK_PORT)
e2e_env=(VF_STACK_DIR="$E2E_STACK_DIR" VF_STACK_PORT=$E2E_STACK_PORT)
lanes=()
{
    phase quick "${quick_env[@]}" "$PY" -m pytest tests/unit tests/integration tests/voice_client
    phase e2e-own "${quick_env[@]}" "$PY" -m pytest -m own_fleet tests/e2e
} &
lanes+=($!)
phase e2e "${e2e_env[@]}" "$PY" -m pytest -m "not own_fleet" tests/e2e &
lanes+=($!)
phase molecule "$PY" -m pytest -m "not heavy" tests/molecule &
lanes+=($!)
phase molecule-heavy "$PY" -m pytest -m heavy tests/molecule &
lanes+=($!)
wait "${lanes[@]}" || true
# The heavy lane waited for this build (or made the image itself if it failed): never left running.
wait "$bed_arm64" || true

failed=()
for name in quick e2e-own e2e molecule molecule-heavy; do
    rc=$(cat "$LOGS/$name.rc" 2>/dev/null || echo "never ran")
    summary=$(grep -E '^(=+ .*(passed|failed|error|no tests ran).* =+|[0-9]+ (passed|failed).*)$' "$LOGS/$name.log" | tail -1)
    if [[ $rc == 0 ]]; then
        printf '\033[32mphase %-14s ok\033[0m   %s\n' "$name" "$summary"
    else
        printf '\033[31mphase %-14s FAILED (pytest exit %s)\033[0m   %s\n' "$name" "$rc" "$summary"
        [[ $rc == 5 ]] && echo "  (pytest collected no tests: a phase that tests nothing is a failure)"
        echo "  --- last lines of $LOGS/$name.log ---"
        tail -60 "$LOGS/$name.log" | sed 's/^/  /'
        failed+=("$name")
    fi
done
printf 'test phases finished in %ds\n' $(($(date +%s) - start))
((${#failed[@]} == 0)) || die "failed phases: ${failed[*]} (logs in $LOGS/)"
