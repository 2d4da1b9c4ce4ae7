#!/bin/bash
# `make demo`: the whole product on one machine, for real.
#
# A simulated fleet of Raspberry Pis (systemd containers reached over SSH on
# loopback) registered in a local Supabase-compatible registry; the voice
# client provisioned with site.yml (release 1.0.0, this checkout), release
# 1.1.0 rolled out in batches with a canary, release 1.2.0 published in the
# registry and installed by the hourly scheduled play on the devices whose
# local 2 AM window is open at the chosen instant, then the fleet's status.
#
#   DEMO_HOSTS=5   devices in the fleet (make demo N=8 sets it)
#
# Safe to re-run: every step converges, and the fleet ends in the same state.
source "$(dirname "$0")/lib.sh"
cd "$VF_ROOT"

HOSTS=${DEMO_HOSTS:-5}
PREFIX=vf-fleet
GROUP=fleet_vf_fleet
INVENTORY=.cache/fleet/inventory
VARIANTS=.cache/demo
PY=.venv/bin/python
started=$(date +%s)

step() { printf '\n\033[1;36m### %s\033[0m\n' "$*"; }
elapsed() { local s=$(($(date +%s) - started)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
playbook() { .venv/bin/ansible-playbook -i "$INVENTORY" --limit "$GROUP" "$@"; }

step "1/6 The fleet: $HOSTS simulated Pis, the registry, the stand-in voice server"
"$PY" tools/fleet.py up --count "$HOSTS" --prefix "$PREFIX"
# shellcheck source=/dev/null
. .stack/env
"$PY" tools/fleet.py status --prefix "$PREFIX"

step "2/6 Provision every device with site.yml: packages, audio, service, release 1.0.0, registry"
playbook playbooks/site.yml

step "3/6 Roll out release 1.1.0 in batches: a canary, then half, then the rest"
"$PY" tools/client_variant.py --kind plain --version 1.1.0 --dest "$VARIANTS/1.1.0" >/dev/null
playbook playbooks/rollout.yml -e "rollout_source=$VF_ROOT/$VARIANTS/1.1.0" \
    -e '{"rollout_batches": [1, "50%", "100%"]}' -e 'rollout_description=demo: release 1.1.0'

step "4/6 Publish release 1.2.0 in the registry, as an operator would"
"$PY" tools/client_variant.py --kind plain --version 1.2.0 --dest "$VARIANTS/1.2.0" >/dev/null
psql -X -q "$DATABASE_URL" -v ON_ERROR_STOP=1 -v "url=$VF_ROOT/$VARIANTS/1.2.0" <<'SQL'
INSERT INTO public.updates (version, update_type, description, package_url)
VALUES ('1.2.0', 'scheduled', 'demo: release 1.2.0, installed in each device''s 2 AM window', :'url')
ON CONFLICT (version) DO NOTHING;
SQL
echo "updates: 1.2.0 (scheduled) -> $VARIANTS/1.2.0"

# The next 01:30 UTC: 02:30 in Berlin, whose window (02:00-03:00 local) is
# open then; New York, Kolkata, Sydney and Los Angeles are outside theirs.
now=$(date -u -d "$( [[ $(date -u +%H%M) < 0130 ]] && echo today || echo tomorrow ) 01:30" +%Y-%m-%dT%H:%M:%SZ)
step "5/6 The hourly scheduled play, as cron would run it at $now"
playbook playbooks/scheduled.yml -e "scheduled_now=$now"

step "6/6 Where the fleet stands"
playbook playbooks/status.yml >/dev/null
cat reports/status-latest.md

cat <<EOF

$(printf '\033[1;32m')Demo finished in $(elapsed).$(printf '\033[0m')

What you saw:
  - $HOSTS systemd containers booted like Raspberry Pi OS, reached over SSH on 127.0.0.1,
    listed by the supabase_devices inventory plugin from the local registry.
  - site.yml built a clean venv per release from a hash-checked wheelhouse the controller
    built once, switched 'current' atomically behind a health gate, and registered each Pi.
  - rollout.yml updated a canary first, then growing batches, writing every host's progress
    to device_updates; scheduled.yml installed 1.2.0 only where it was 2 AM local time and
    said when the other windows open.

Look at:
  - the rollout report:   $VF_ROOT/reports/latest.html   (JSON: reports/latest.json)
  - the fleet status:     $VF_ROOT/reports/status-latest.md
  - the registry:         . .stack/env && psql "\$DATABASE_URL" -c 'table device_updates'
  - a device:             docker exec -it $PREFIX-01 bash   (journalctl -u voice-client)
  - the voice server log: docker exec $PREFIX-voice-server journalctl -u vf-voice-server

Next:
  - roll back one device: .venv/bin/ansible-playbook -i $INVENTORY playbooks/rollback.yml -l $PREFIX-02
  - run the tests:        make test
  - clean up:             make fleet-down && make stack-down
  - real Pis: see "Your own Supabase project and real Pis" in README.md
EOF
