#!/bin/bash
# Runs inside one simulated device (as root, through `docker exec -i ... bash -s`)
# and makes it look like a freshly flashed Raspberry Pi OS Lite: the first user
# `pi` (uid 1000) with passwordless sudo, the fleet's SSH key, password logins off,
# and the device's identity "flashed" into /var/lib/voice-client/device_uuid.
#
# Environment: FLEET_PUBKEY (one authorized_keys line), FLEET_UUID (the identity
# to write when the device has none yet; an existing file is never touched).
# Output: one `changed <what>` line per change, then `device_uuid <value>`,
# `architecture <uname -m>`, `sudo ok` (or `sudo broken <why>`) and one
# `hostkey <type> <base64>` per SSH host key. Idempotent.
set -euo pipefail

changed() { echo "changed $*"; }

: "${FLEET_PUBKEY:?FLEET_PUBKEY is required}"
: "${FLEET_UUID:?FLEET_UUID is required}"

# Raspberry Pi OS gives its first user these groups; gpio, i2c and spi come from
# raspberrypi-sys-mods, which a Debian image lacks.
for group in gpio i2c spi netdev; do
    if ! getent group "$group" >/dev/null; then
        groupadd --system "$group"
        changed "group $group"
    fi
done
if ! getent passwd pi >/dev/null; then
    useradd --uid 1000 --user-group --create-home --home-dir /home/pi --shell /bin/bash pi
    changed "user pi"
fi
missing=()
for group in adm dialout cdrom sudo audio video plugdev games users input render netdev spi i2c gpio; do
    getent group "$group" >/dev/null || continue
    id -nG pi | tr ' ' '\n' | grep -qx "$group" || missing+=("$group")
done
if ((${#missing[@]})); then
    usermod -aG "$(IFS=,; echo "${missing[*]}")" pi
    changed "groups of pi: ${missing[*]}"
fi

# Passwordless sudo, byte for byte what Raspberry Pi OS installs.
sudoers=/etc/sudoers.d/010_pi-nopasswd
rule='pi ALL=(ALL) NOPASSWD: ALL'
if [[ ! -f $sudoers || "$(cat "$sudoers")" != "$rule" || "$(stat -c %a:%U:%G "$sudoers")" != 440:root:root ]]; then
    # sudo skips files whose name holds a dot, so the temporary file is never read half-written.
    tmp=$(mktemp /etc/sudoers.d/.010_pi-nopasswd.XXXXXX)
    printf '%s\n' "$rule" >"$tmp"
    chmod 0440 "$tmp"
    visudo -cqf "$tmp"
    mv -f "$tmp" "$sudoers"
    changed "sudoers"
fi

# The fleet's key; other keys someone added stay.
install -d -m 0700 -o pi -g pi /home/pi/.ssh
keys=/home/pi/.ssh/authorized_keys
if [[ ! -f $keys ]] || ! grep -qxF -- "$FLEET_PUBKEY" "$keys"; then
    printf '%s\n' "$FLEET_PUBKEY" >>"$keys"
    changed "authorized key"
fi
chown pi:pi "$keys"
chmod 0600 "$keys"

# Keys only: the account has no password and sshd asks for none.
sshd_conf=/etc/ssh/sshd_config.d/10-voice-fleet.conf
sshd_want=$'# Written by voice-fleet tools/fleet.py: keys only, like an image flashed with a public key.\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no'
if [[ ! -f $sshd_conf || "$(cat "$sshd_conf")" != "$sshd_want" ]]; then
    printf '%s\n' "$sshd_want" >"$sshd_conf"
    chmod 0644 "$sshd_conf"
    sshd -t
    if systemctl is-active --quiet ssh.service; then
        systemctl reload ssh.service
    fi
    changed "sshd keys only"
fi
if [[ "$(getent shadow pi | cut -d: -f2)" != "!"* ]]; then
    passwd --lock pi >/dev/null
    changed "password of pi locked"
fi

# The identity, written once: a device keeps it for life (the roles later give
# the file to the client's user).
state=/var/lib/voice-client
if [[ ! -d $state ]]; then
    install -d -m 0755 -o root -g root "$state"
    changed "state directory"
fi
if [[ ! -e $state/device_uuid ]]; then
    tmp=$(mktemp "$state/.device_uuid.XXXXXX")
    printf '%s\n' "$FLEET_UUID" >"$tmp"
    chmod 0644 "$tmp"
    sync "$tmp"
    # A hard link never replaces a file that appeared meanwhile.
    if ln "$tmp" "$state/device_uuid" 2>/dev/null; then
        changed "identity"
    fi
    rm -f "$tmp"
fi
echo "device_uuid $(head -n1 "$state/device_uuid")"
echo "architecture $(uname -m)"
# sudo is setuid root: under qemu-user emulation it works only when the binfmt
# handler passes the program's credentials on (flag C).
if why=$(runuser -u pi -- sudo -n true 2>&1); then
    echo "sudo ok"
else
    echo "sudo broken ${why//$'\n'/ }"
fi
for pub in /etc/ssh/ssh_host_*_key.pub; do
    echo "hostkey $(cut -d' ' -f1,2 "$pub")"
done
