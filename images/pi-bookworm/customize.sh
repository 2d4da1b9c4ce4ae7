#!/bin/bash
# Adjust a fresh debootstrap rootfs (path in $1) so systemd boots cleanly as PID 1
# in an unprivileged container and behaves like a freshly flashed Pi.
set -euo pipefail
root=$1
here="$(cd "$(dirname "$0")" && pwd)"

# Units that need hardware, a console or kernel features a container lacks.
for unit in getty@tty1.service serial-getty@.service console-getty.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
    systemd-udevd-kernel.socket sys-kernel-config.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount systemd-remount-fs.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# Every container gets its own SSH host keys at first boot (Raspberry Pi OS does
# the same with regenerate_ssh_host_keys), never the ones baked into the image.
rm -f "$root"/etc/ssh/ssh_host_*
install -m 0644 "$here/regenerate-ssh-host-keys.service" \
    "$root/etc/systemd/system/regenerate-ssh-host-keys.service"
ln -sf ../regenerate-ssh-host-keys.service \
    "$root/etc/systemd/system/multi-user.target.wants/regenerate-ssh-host-keys.service"

# The machine id is made at boot, per container.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# UTC like a freshly flashed image; the roles set the device's own zone.
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
echo "Etc/UTC" >"$root/etc/timezone"

# Keep the image small: no package caches or docs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/*
