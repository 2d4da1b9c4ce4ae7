#!/usr/bin/env python3
"""Publish a voice-client release for pull-mode devices: build, sign, store, announce.

    tools/publish.py keygen  --out PATH
    tools/publish.py release --key PATH --store DIR --base-url URL --platform cp311-x86_64 [...]

`keygen` makes the publisher's ed25519 key pair: PATH (private, PEM, mode
0600) and PATH.pub (public, PEM). The private key stays with the publisher:
never in the store, the registry, a repository or on a device. Devices get
only PATH.pub (roles/voice_agent: voice_agent_public_key).

`release`, for each --platform (<abi>-<arch>, e.g. cp311-x86_64, cp311-aarch64):

1. builds the wheelhouse with the very code push uses
   (the action plugin javia.voice_fleet.voice_wheelhouse, plugins/action/voice_wheelhouse.py):
   the client wheel plus every locked dependency for that platform, hash-checked;
2. writes <store>/<platform>/<release_id>/: the wheels, manifest.json (release_id,
   version, python, platform, system_packages, requirements, files {name: {sha256,
   size}}, published_at, sequence) and manifest.json.sig (the base64 ed25519
   signature of manifest.json's exact bytes, made with `cryptography`);
3. points <store>/<platform>/<version> at that release (a symlink replaced atomically);
   and, once for all platforms, stores the client's source the same way under
   <store>/source/<source digest>/ (voice_client.tar and its signed manifest; devices
   never fetch it), so a push controller can install the row too: it verifies and
   builds that very source (voice_wheelhouse.fetch_published_source);
4. adds or refreshes the `updates` row of the version through the registry's
   PostgREST with the service key (SUPABASE_URL, SUPABASE_SERVICE_KEY), its
   package_url = <base-url>/{platform}/<version>/manifest.json?sequence=<sequence> (the
   device puts in its own platform).

`sequence` grows with every publish to a store (<store>/sequence, under a lock):
a device accepts a manifest only when its sequence is greater than the last one
it accepted, so an older signed manifest cannot be replayed as new.

The store here is a directory that the local stack serves over HTTP
(tools/stack.py: /store/). In production it is a Supabase Storage bucket or any
static HTTPS host: upload the directory as it is (for Supabase Storage, e.g.
`supabase.storage.from_(bucket).upload(path, data)` with supabase-py for each
file, or `supabase storage cp -r`), and pass the bucket's public URL as
--base-url. That upload cannot run in this sandbox (no Supabase project) and is
not done by this tool.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tools/ is on sys.path (this is a script): the stack tool's file writer.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import atomic_write  # noqa: E402

DEFAULT_SOURCE = ROOT / "voice_client"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voice-fleet" / "wheelhouse"
DEFAULT_GLIBC = "2.36"  # Debian bookworm / Raspberry Pi OS 12
PLATFORM_RE = re.compile(r"^cp3(\d{1,2})-(x86_64|aarch64|armv7l)$")
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
# Written into the manifest; the agent refuses formats it does not know.
MANIFEST_FORMAT = 1


class PublishError(Exception):
    """A failure a person can act on; printed without a traceback."""


def wheelhouse_module():
    """voice_wheelhouse, the action plugin push runs (one implementation), by its full name."""
    from ansible_collections.javia.voice_fleet.plugins.action import voice_wheelhouse  # noqa: PLC0415

    return voice_wheelhouse


# --- keys and signatures ----------------------------------------------------------


def keygen(out: Path) -> Path:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    pub = out.with_name(out.name + ".pub")
    if out.exists():
        raise PublishError(f"{out} exists: refusing to replace a signing key (devices trust its public half)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    os.chmod(out, 0o600)
    pub.write_bytes(public)
    os.chmod(pub, 0o644)
    return pub


def load_private_key(path: Path):
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    if not path.is_file():
        raise PublishError(
            f"signing key {path} does not exist (make one: tools/publish.py keygen --out {path})"
        )
    if path.stat().st_mode & 0o077:
        raise PublishError(f"signing key {path} is readable by others: chmod 600 {path}")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise PublishError(f"{path} is not an ed25519 private key")
    return key


def sign(key, data: bytes) -> bytes:
    """The base64 text of the ed25519 signature of data."""
    return base64.b64encode(key.sign(data)) + b"\n"


# --- the store ----------------------------------------------------------------------


@contextlib.contextmanager
def store_lock(store: Path):
    store.mkdir(parents=True, exist_ok=True)
    with (store / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def next_sequence(store: Path) -> int:
    """One more than the last sequence handed out in this store (call under store_lock)."""
    counter = store / "sequence"
    last = int(counter.read_text().strip() or 0) if counter.exists() else 0
    found = [last]
    for manifest in store.glob(f"*/*/{MANIFEST}"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            found.append(int(json.loads(manifest.read_text())["sequence"]))
    value = max(found) + 1
    atomic_write(counter, f"{value}\n", 0o644)
    return value


def point(link: Path, target: str) -> None:
    """link -> target, replaced by rename (never missing)."""
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def parse_platform(value: str, glibc: str, wh) -> object:
    match = PLATFORM_RE.match(value)
    if not match:
        raise PublishError(
            f"--platform {value!r} must look like cp311-x86_64 (arches: x86_64, aarch64, armv7l)"
        )
    return wh.Target.from_arg({"arch": match.group(2), "python": f"3.{match.group(1)}", "glibc": glibc})


def build_platform(args: argparse.Namespace, wh, target, key, sequence: int) -> dict:
    """The release of one platform, written into the store; its manifest."""
    index_url = args.index_url or os.environ.get("PIP_INDEX_URL") or wh.DEFAULT_INDEX
    house = wh.Wheelhouse(args.cache_dir, wh.Index(index_url))
    lock = args.lock or args.source / "requirements.lock"
    try:
        reqs = wh.parse_lock(lock.read_text(), str(lock))
        with house.locked():
            client = house.client_wheel(args.source)
            built = house.prepare(lock, reqs, target, client)
    except wh.WheelhouseError as exc:
        raise PublishError(f"wheelhouse for {target.key}: {exc}") from None
    if not built["complete"]:
        names = [job["name"] for job in built["needs_build"]]
        raise PublishError(
            f"the wheelhouse for {target.key} lacks wheels the index does not have: {names}; build them "
            "once on a device of that platform (a push rollout does), or publish from a controller of it"
        )
    release_dir = args.store / target.key / built["release_id"]
    release_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, info in sorted(built["files"].items()):
        src = Path(info["path"])
        wh.link_or_copy(src, release_dir / name)  # push's own: hard link, else copy
        files[name] = {"sha256": info["sha256"], "size": src.stat().st_size}
    manifest = {
        "format": MANIFEST_FORMAT,
        "release_id": built["release_id"],
        "version": built["version"],
        "python": target.python,
        "platform": target.key,
        "glibc": target.glibc,
        "system_packages": sorted(set(args.system_package)),
        "update_type": args.update_type,
        "requirements": Path(built["requirements"]).read_text(),
        "lock_sha256": built["lock_sha256"],
        "client_sha256": built["client_sha256"],
        "client_source_sha256": built["client_source_sha256"],
        "files": files,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sequence": sequence,
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    # The signature first: a reader that finds the new manifest also finds its signature.
    atomic_write(release_dir / SIGNATURE, sign(key, data), 0o644)
    atomic_write(release_dir / MANIFEST, data, 0o644)
    point(args.store / target.key / built["version"], built["release_id"])
    return manifest


def source_archive(wh, source: Path) -> bytes:
    """The client's source as a tar, byte-identical for identical files (what its digest covers)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, path in wh.source_files(source):
            info = tarfile.TarInfo(f"voice_client/{rel}")
            info.size = path.stat().st_size
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    return out.getvalue()


def publish_source(args: argparse.Namespace, wh, key, sequence: int) -> dict:
    """The signed client source under <store>/source/: what a push controller installs a row from.

    Devices never fetch it. A controller resolving the row's package_url with `{platform}`
    as `source` verifies the signature, the archive's sha256 and the files' digest, and
    builds the very release the devices of each platform pull (tasks/resolve_release.yml).
    """
    digest, version = wh.source_digest(args.source), wh.client_version(args.source)
    archive = source_archive(wh, args.source)
    release_dir = args.store / wh.PUBLISHED_SOURCE / digest
    release_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(release_dir / wh.SOURCE_ARCHIVE, archive, 0o644)
    manifest = {
        "format": MANIFEST_FORMAT,
        "kind": wh.PUBLISHED_SOURCE,
        "version": version,
        "client_source_sha256": digest,
        "files": {wh.SOURCE_ARCHIVE: {"sha256": hashlib.sha256(archive).hexdigest(), "size": len(archive)}},
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sequence": sequence,
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    atomic_write(release_dir / SIGNATURE, sign(key, data), 0o644)
    atomic_write(release_dir / MANIFEST, data, 0o644)
    point(args.store / wh.PUBLISHED_SOURCE / version, digest)
    return manifest


def announce(args: argparse.Namespace, version: str, sequence: int) -> dict:
    """The `updates` row of the version, through PostgREST with the service key."""
    url, service_key = os.environ.get("SUPABASE_URL"), os.environ.get("SUPABASE_SERVICE_KEY")
    if not url or not service_key:
        raise PublishError("SUPABASE_URL and SUPABASE_SERVICE_KEY must be set to write the updates row")
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_registry_client import (  # noqa: PLC0415
        session,
    )

    row = {
        "version": version,
        "update_type": args.update_type,
        "description": args.description,
        # The sequence makes every publish a new URL: a device that has handled this row
        # knows with one request that nothing changed.
        "package_url": f"{args.base_url.rstrip('/')}/{{platform}}/{version}/{MANIFEST}?sequence={sequence}",
        "system_packages": sorted(set(args.system_package)),
        "requires_system_packages": bool(args.system_package),
    }
    env = {"SUPABASE_URL": url, "SUPABASE_SERVICE_KEY": service_key}
    with session(env, "publish", lambda exc: PublishError(str(exc))) as client:
        rows = client.rows(
            f"announcing {version}", client.table("updates").upsert(row, on_conflict="version")
        )
    return (rows or [row])[0]


def release(args: argparse.Namespace) -> dict:
    key = load_private_key(args.key)
    if args.store.resolve() in args.key.resolve().parents:
        raise PublishError(f"the signing key {args.key} lies inside the store {args.store}: move it out")
    wh = wheelhouse_module()
    targets = [parse_platform(p, args.glibc, wh) for p in args.platform]
    with store_lock(args.store):
        sequence = next_sequence(args.store)
        manifests = [build_platform(args, wh, t, key, sequence) for t in targets]
        source = publish_source(args, wh, key, sequence)
    versions = {m["version"] for m in manifests} | {source["version"]}
    if len(versions) != 1:
        raise PublishError(f"the platforms built different versions: {sorted(versions)}")
    row = None if args.no_registry else announce(args, versions.pop(), sequence)
    return {"sequence": sequence, "manifests": manifests, "source": source, "update": row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_key = sub.add_parser("keygen", help="make the publisher's ed25519 key pair (private 0600)")
    p_key.add_argument("--out", type=Path, required=True, help="private key file; the public one is OUT.pub")
    p_rel = sub.add_parser("release", help="build, sign, store and announce a release")
    p_rel.add_argument("--key", type=Path, required=True, help="the publisher's private key (PEM, 0600)")
    p_rel.add_argument("--store", type=Path, required=True, help="the release store directory")
    p_rel.add_argument("--base-url", required=True, help="URL devices fetch the store's root from")
    p_rel.add_argument("--platform", action="append", required=True, help="e.g. cp311-x86_64 (repeatable)")
    p_rel.add_argument("--glibc", default=DEFAULT_GLIBC, help=f"devices' glibc (default {DEFAULT_GLIBC})")
    p_rel.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="voice client source")
    p_rel.add_argument("--lock", type=Path, help="device lock (default <source>/requirements.lock)")
    p_rel.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="wheelhouse cache (push's)")
    p_rel.add_argument("--index-url", default="", help="package index (default PIP_INDEX_URL, else PyPI)")
    p_rel.add_argument("--update-type", choices=["scheduled", "urgent"], default="scheduled")
    p_rel.add_argument("--description", default="voice-client release")
    p_rel.add_argument("--system-package", action="append", default=[], help="Debian package (repeatable)")
    p_rel.add_argument("--no-registry", action="store_true", help="write the store only, no updates row")
    p_rel.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            pub = keygen(args.out)
            print(
                f"private key {args.out} (0600: keep it with the publisher only); "
                f"public key {pub} (for devices)"
            )
            return 0
        args.store = args.store.resolve()
        args.source = args.source.resolve()
        if not (args.source / "pyproject.toml").is_file():
            raise PublishError(f"{args.source} is not the voice client's source (no pyproject.toml)")
        result = release(args)
    except PublishError as exc:
        print(f"publish {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    **result,
                    "manifests": [
                        {k: v for k, v in m.items() if k != "requirements"} for m in result["manifests"]
                    ],
                },
                indent=2,
                default=str,
            )
        )
    else:
        for m in result["manifests"]:
            print(
                f"published {m['release_id']} ({m['platform']}, {len(m['files'])} files, "
                f"sequence {m['sequence']})"
            )
        if result["update"]:
            print(f"updates row {result['update']['version']}: {result['update']['package_url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
