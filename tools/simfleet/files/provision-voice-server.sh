#!/bin/bash
# Runs inside the fleet's voice server container (as root, through `docker exec
# -i ... bash -s`): installs the stand-in Javia voice server, which tools/fleet.py
# has just copied to /var/tmp, as a systemd unit, and waits until it listens.
# Output: one `changed <what>` line per change. Idempotent.
set -euo pipefail

changed() { echo "changed $*"; }
unit=vf-voice-server.service
restart=0

install_file() { # SOURCE DEST
    if ! cmp -s "$1" "$2"; then
        install -D -m 0644 -o root -g root "$1" "$2"
        changed "installed $2"
        restart=1
    fi
    rm -f "$1"
}

install_file /var/tmp/voice_server.py /opt/vf-voice-server/voice_server.py
install_file "/var/tmp/$unit" "/etc/systemd/system/$unit"
if ((restart)); then
    systemctl daemon-reload
fi
if ! systemctl is-enabled --quiet "$unit"; then
    systemctl enable --quiet "$unit"
    changed enabled
fi
if ((restart)); then
    systemctl restart "$unit"
    changed restarted
elif ! systemctl is-active --quiet "$unit"; then
    systemctl start "$unit"
    changed started
fi
for _ in $(seq 60); do
    if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
        exit 0
    fi
    sleep 0.5
done
echo "the voice server does not listen on :8080 after 30 s; see journalctl -u $unit" >&2
exit 1
