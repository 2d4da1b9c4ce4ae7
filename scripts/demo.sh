#!/bin/bash
# `make demo`: the whole product on one machine, for real.
#
# A simulated fleet of Raspberry Pis (systemd containers reached over SSH on
# loopback) registered in a local Supabase-compatible registry; the voice
# client provisioned with site.yml (release 1.0.0, this checkout), release
# 1.1.0 rolled out in batches with a canary, the last device switched to pull
# mode (its own credential and agent, SSH off), release 1.2.0 announced in the
# registry and installed by the hourly scheduled play on the push devices whose
# local 2 AM window is open at the chosen instant, release 1.3.0 published
# signed and installed by the pull device itself, then the fleet's status.
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

PULL="$PREFIX-$(printf '%02d' "$HOSTS")"
PUSH="$GROUP:!$PULL"
KEY=$VARIANTS/publisher.key

step "1/7 The fleet: $HOSTS simulated Pis, the registry, the stand-in voice server"
# An earlier demo left $PULL without SSH (pull mode): open it again first, since `fleet up`
# checks every running device's sshd (a stopped container boots with it).
if [[ $(docker container inspect -f '{{.State.Running}}' "$PULL" 2>/dev/null) == true ]]; then
    docker exec "$PULL" systemctl start ssh
fi
"$PY" tools/fleet.py up --count "$HOSTS" --prefix "$PREFIX"
# shellcheck source=/dev/null
. .stack/env
"$PY" tools/fleet.py status --prefix "$PREFIX"

step "2/7 Provision every device with site.yml: packages, audio, service, release 1.0.0, registry"
# The publisher's key first: a device an earlier demo left in pull mode gets its agent here too.
[[ -f $KEY ]] || "$PY" tools/publish.py keygen --out "$KEY"
# Deliberately this checkout's release, whatever an earlier demo left (site.yml keeps newer ones otherwise).
playbook playbooks/site.yml -e rollout_allow_downgrade=true -e "voice_agent_public_key_file=$VF_ROOT/$KEY.pub"

step "3/7 Roll out release 1.1.0 in batches: a canary, then half, then the rest"
"$PY" tools/client_variant.py --kind plain --version 1.1.0 --dest "$VARIANTS/1.1.0" >/dev/null
playbook playbooks/rollout.yml -e "rollout_source=$VF_ROOT/$VARIANTS/1.1.0" \
    -e '{"rollout_batches": [1, "50%", "100%"]}' -e 'rollout_description=demo: release 1.1.0'

step "4/7 $PULL goes pull mode: its own credential, the agent, the publisher's key; then its SSH is off"
.venv/bin/ansible-playbook -i "$INVENTORY" --limit "$PULL" playbooks/site.yml \
    -e voice_management=pull -e "voice_agent_public_key_file=$VF_ROOT/$KEY.pub"
docker exec "$PULL" systemctl stop ssh
echo "$PULL: sshd stopped; from now on it talks only to the registry and the release store"

step "5/7 Announce release 1.2.0 in the registry, as an operator would; the hourly play installs it"
"$PY" tools/client_variant.py --kind plain --version 1.2.0 --dest "$VARIANTS/1.2.0" >/dev/null
"$PY" tools/registry.py add-update --version 1.2.0 --package-url "$VF_ROOT/$VARIANTS/1.2.0" \
    --description "demo: release 1.2.0, installed in each device's 2 AM window"
# The next 01:30 UTC: 02:30 in Berlin, whose window (02:00-03:00 local) is
# open then; New York, Kolkata, Sydney and Los Angeles are outside theirs.
now=$(date -u -d "$( [[ $(date -u +%H%M) < 0130 ]] && echo today || echo tomorrow ) 01:30" +%Y-%m-%dT%H:%M:%SZ)
echo "the hourly play, as cron would run it at $now"
.venv/bin/ansible-playbook -i "$INVENTORY" --limit "$PUSH" playbooks/scheduled.yml -e "scheduled_now=$now"

step "6/7 Publish release 1.3.0 signed (urgent): $PULL installs it by itself, no SSH"
"$PY" tools/client_variant.py --kind plain --version 1.3.0 --dest "$VARIANTS/1.3.0" >/dev/null
"$PY" tools/publish.py release --key "$KEY" --store "$VF_STORE_DIR" --base-url "http://$PREFIX-relay:8080/store" \
    --platform cp311-x86_64 --source "$VF_ROOT/$VARIANTS/1.3.0" --update-type urgent \
    --description "demo: release 1.3.0, pulled by the devices in pull mode"
cursor=$(docker exec "$PULL" journalctl -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
docker exec "$PULL" systemctl start voice-agent.service || true
docker exec "$PULL" journalctl -u voice-agent.service --after-cursor="$cursor" -o cat --no-pager | tail -12
# The demo says what it saw: the pull device runs 1.3.0 now, or the demo fails here.
active=$(docker exec "$PULL" readlink /opt/voice-client/current)
[[ $active == releases/1.3.0-* ]] || die "$PULL did not install 1.3.0 by itself (it runs ${active#releases/}): see its journal above"

step "7/7 Where the fleet stands"
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
    to device_updates; scheduled.yml installed the newest installable update (1.2.0 on a
    fresh registry) only where it was 2 AM local time and
    said when the other windows open.
  - $PULL, with its SSH off, checked in with its own credential, verified the signed
    manifest of 1.3.0, fetched only the wheels it lacked and installed it behind the same
    health gate, recording its own device_updates rows (docs/PULL_MODE.md).

Look at:
  - the rollout report:   $VF_ROOT/reports/latest.html   (JSON: reports/latest.json)
  - the fleet status:     $VF_ROOT/reports/status-latest.md
  - the registry:         . .stack/env && .venv/bin/python tools/registry.py progress
  - a device:             docker exec -it $PREFIX-01 bash   (journalctl -u voice-client)
  - the voice server log: docker exec $PREFIX-voice-server journalctl -u vf-voice-server

Next:
  - roll back one device: .venv/bin/ansible-playbook -i $INVENTORY playbooks/rollback.yml -l $PREFIX-02
  - run the tests:        make test
  - clean up:             make fleet-down && make stack-down
  - real Pis: see "Your own Supabase project and real Pis" in README.md
EOF
