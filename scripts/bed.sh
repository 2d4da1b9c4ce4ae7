#!/bin/bash
# The test bed: a Docker engine that answers, and the systemd base image that
# stands in for a Raspberry Pi, built locally with debootstrap (no registry).
#
#   scripts/bed.sh docker          make sure a Docker engine answers
#   scripts/bed.sh image [ARCH]    build the base image if its tag is missing; print the tag
#   scripts/bed.sh tag [ARCH]      print the tag the current recipe builds (no build)
#
# ARCH is a Debian architecture: amd64 (default, the controller's) or arm64.
# The tag carries a hash of images/pi-bookworm/*, so a changed recipe rebuilds.
source "$(dirname "$0")/lib.sh"

RECIPE_DIR="$VF_ROOT/images/pi-bookworm"
IMAGE_REPO=voice-fleet/pi-bookworm
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/voice-fleet-dockerd.log}

native_arch() { dpkg --print-architecture; }

image_tag() {
    local arch=${1:-$(native_arch)} hash
    hash=$( (cd "$RECIPE_DIR" && sha256sum -- * && echo "$arch") | sha256sum | cut -c1-12)
    echo "$IMAGE_REPO:$arch-$hash"
}

ensure_docker() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    ensure_apt docker.io
    if ! pgrep -x dockerd >/dev/null; then
        log "Starting the Docker engine (log: $DOCKERD_LOG)"
        # No systemd on the host: run the daemon in its own session so it
        # outlives this script and the make that called it.
        setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    wait_for "the Docker engine to answer (see $DOCKERD_LOG)" 60 docker info
}

ensure_binfmt() {
    local arch=$1
    [[ $arch == "$(native_arch)" ]] && return 0
    ensure_apt qemu-user-static binfmt-support
    if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || die "cannot mount binfmt_misc: $arch images need it to run"
    fi
    update-binfmts --enable >/dev/null 2>&1 || true
    local handler=/proc/sys/fs/binfmt_misc/qemu-aarch64
    [[ -e $handler ]] || die "no binfmt handler for $arch after installing qemu-user-static"
    # sudo in an emulated container needs the setuid bit honoured: flag C
    # (credentials from the binary, which needs O). Debian registers PF only.
    if ! grep -q '^flags: .*C' "$handler"; then
        local interpreter offset magic mask
        interpreter=$(sed -n 's/^interpreter //p' "$handler")
        offset=$(sed -n 's/^offset //p' "$handler")
        magic=$(sed -n 's/^magic //p' "$handler" | sed 's/../\\x&/g')
        mask=$(sed -n 's/^mask //p' "$handler" | sed 's/../\\x&/g')
        echo -1 >"$handler"
        printf ':qemu-aarch64:M:%s:%s:%s:%s:OCPF' "$offset" "$magic" "$mask" "$interpreter" \
            >/proc/sys/fs/binfmt_misc/register \
            || die "cannot register the qemu-aarch64 handler with flag C (sudo in arm64 devices needs it)"
    fi
}

build_image() {
    local arch=$1 tag=$2
    # shellcheck source=../images/pi-bookworm/recipe.env
    source "$RECIPE_DIR/recipe.env"
    ensure_apt debootstrap
    ensure_binfmt "$arch"
    # Global, not local: the EXIT trap runs after this function has returned.
    rootfs=$(mktemp -d /var/tmp/voice-fleet-rootfs.XXXXXX)
    # The rootfs is a few hundred MB of root-owned files: never leave it behind.
    trap 'rm -rf --one-file-system "$rootfs" "$rootfs.log"' EXIT
    log "Building $tag with debootstrap ($SUITE, $arch); this takes a minute or a few under emulation"
    debootstrap --variant=minbase --arch="$arch" --include="$INCLUDE" \
        "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; die "debootstrap failed for $arch (full log: $rootfs.log)"; }
    "$RECIPE_DIR/customize.sh" "$rootfs"
    tar -C "$rootfs" -c . | docker import \
        --change 'CMD ["/lib/systemd/systemd"]' \
        --change 'ENV container=docker' \
        --change "LABEL org.voice-fleet.recipe=$tag org.voice-fleet.arch=$arch" \
        - "$tag" >/dev/null
}

ensure_image() {
    local arch=${1:-$(native_arch)} tag
    tag=$(image_tag "$arch")
    ensure_docker
    # Running an arm64 image needs the emulator too, not only building one.
    ensure_binfmt "$arch"
    if ! docker image inspect "$tag" >/dev/null 2>&1; then
        # Two builds at once (make -j, two terminals) would both debootstrap.
        exec 9>"/var/lock/voice-fleet-image-$arch.lock"
        flock 9
        docker image inspect "$tag" >/dev/null 2>&1 || build_image "$arch" "$tag"
    fi
    echo "$tag"
}

case ${1:-} in
    docker) ensure_docker ;;
    image) ensure_image "${2:-}" ;;
    tag) image_tag "${2:-}" ;;
    *) die "usage: $0 docker | image [ARCH] | tag [ARCH]" ;;
esac
