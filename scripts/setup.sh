#!/bin/bash
# Controller set-up: the project venv (.venv) with exactly the locked
# dependencies, the Debian tools the controller uses, and a check that every
# collection in requirements.yml is present at a version it allows.
#
# Idempotent and quick when nothing changed: the venv carries a stamp of the
# lock files and the interpreter it was built from.
source "$(dirname "$0")/lib.sh"

VENV="$VF_ROOT/.venv"
PYTHON=${PYTHON:-python3}

# git and ssh: the plays use them; rsync: synchronize; build tools and
# headers: wheels with C extensions (PyAudio); libopus0: the client's tests.
ensure_apt git openssh-client rsync gcc libc6-dev portaudio19-dev libopus0
# PostgREST comes from the npm registry; any npm will do (Node may not be Debian's).
command -v npm >/dev/null || ensure_apt npm

"$PYTHON" - <<'EOF' || die "Python 3.11 to 3.13 is needed for ansible-core 2.19 (found $($PYTHON -V 2>&1))"
import sys
sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)
EOF

# The stamp covers the voice client's pyproject.toml too: it is installed into
# the venv (editable, for its tests) and must follow changes to its metadata.
stamp=$( (cat "$VF_ROOT/requirements-bootstrap.txt" "$VF_ROOT/requirements.txt" "$VF_ROOT/voice_client/pyproject.toml"
    "$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)

if [[ ! -f $VENV/.vf-stamp || $(cat "$VENV/.vf-stamp") != "$stamp" ]]; then
    log "Installing the controller dependencies into .venv (requirements.txt)"
    [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        --require-hashes -r "$VF_ROOT/requirements-bootstrap.txt"
    # UV_NATIVE_TLS: trust the system's CA bundle (machines behind a TLS proxy).
    UV_NATIVE_TLS=1 VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip sync -q --require-hashes \
        --python "$VENV/bin/python" "$VF_ROOT/requirements.txt" \
        || die "installing requirements.txt failed"
    # uv pip sync removes what the lock does not name, uv itself included.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        --require-hashes -r "$VF_ROOT/requirements-bootstrap.txt"
    # The voice client itself, editable: its dependencies came from the lock above.
    rm -f "$VENV/.vf-stamp"
fi
if [[ ! -f $VENV/.vf-stamp ]] || ! "$VENV/bin/python" -c 'import voice_client' 2>/dev/null; then
    log "Installing the voice client into .venv (editable)"
    UV_NATIVE_TLS=1 VIRTUAL_ENV="$VENV" "$VENV/bin/uv" pip install -q --no-deps \
        --python "$VENV/bin/python" -e "$VF_ROOT/voice_client" \
        || die "installing voice_client/ into .venv failed"
    echo "$stamp" >"$VENV/.vf-stamp"
fi

# This checkout is the collection javia.voice_fleet (playbooks/collections/ links to it): the venv's Python
# finds its shared code (plugins/module_utils) by that full name, as Ansible does, so tools and
# tests import it like the plugins do, with no path edits. A .pth line is how site does that.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pth="$site/voice_fleet_collections.pth"
if [[ ! -f $pth || $(cat "$pth") != "$VF_ROOT/playbooks/collections" ]]; then
    echo "$VF_ROOT/playbooks/collections" >"$pth"
fi

# Where Ansible finds each collection of requirements.yml, checked against its version range.
collections=$("$VENV/bin/python" "$VF_ROOT/tools/check_collections.py" --print-paths "$VF_ROOT/requirements.yml") \
    || exit 1

# Bytecode, written once here: uv installs none, and where PYTHONDONTWRITEBYTECODE is set
# (it is on this project's machines) Python never caches what it compiles, so every
# ansible-playbook and every worker it forks compiled Ansible from source again: 2.8 s of CPU
# for a one-task play instead of 1.6 s, and 40 % of the CPU of the registry tests.
# ansible_collections holds ~90 collections; only those of requirements.yml
# are compiled, where the check above found them.
if [[ ! -f $VENV/.vf-bytecode || $(cat "$VENV/.vf-bytecode") != "$stamp" ]]; then
    log "Compiling the controller venv's Python to bytecode (once per install)"
    # -W ignore: some packages' sources warn while compiling (opuslib); that is not news here.
    find "$site" -mindepth 1 -maxdepth 1 ! -name ansible_collections -print0 \
        | xargs -0 "$VENV/bin/python" -W ignore -m compileall -q -j 0 >/dev/null \
        || die "compiling $site to bytecode failed"
    # shellcheck disable=SC2086 # one path per line, none with blanks
    "$VENV/bin/python" -W ignore -m compileall -q -j 0 $collections >/dev/null \
        || die "compiling the collections of requirements.yml to bytecode failed"
    echo "$stamp" >"$VENV/.vf-bytecode"
fi
