"""A push controller installs a published release (issue 14, item 1): the signed source round trip.

tools/publish.py writes the client's source under <store>/source/ with a signed manifest; a
controller resolving the `updates` row's package_url (voice_wheelhouse.fetch_published_source)
verifies the signature with the publisher's public key, the archive's sha256 and the extracted
files' digest, and gets the very source (so the very release ids) the pull devices install. The
store is served over real HTTP on the loopback.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "voice_client"


@pytest.fixture(scope="module")
def wh(publish):
    return publish.wheelhouse_module()


@pytest.fixture
def published(publish, wh, store, tmp_path):
    """This checkout's client published (source only) with a fresh key: (row's package_url, key.pub)."""
    directory, base_url = store
    public = publish.keygen(tmp_path / "keys" / "publisher.key")
    key = publish.load_private_key(tmp_path / "keys" / "publisher.key")
    args = argparse.Namespace(source=SOURCE, store=directory)
    manifest = publish.publish_source(args, wh, key, sequence=7)
    version = manifest["version"]
    return f"{base_url}/{{platform}}/{version}/manifest.json?sequence=7", public, manifest


def test_a_published_source_is_the_checkout_s_and_gives_the_same_release_ids(wh, published, tmp_path):
    url, public, manifest = published
    got = wh.fetch_published_source(url, public, tmp_path / "cache", manifest["version"])
    assert (
        got == tmp_path / "cache" / "sources" / f"sha256-{manifest['client_source_sha256']}" / "voice_client"
    )
    assert wh.source_digest(got) == wh.source_digest(SOURCE) == manifest["client_source_sha256"]
    targets = [wh.Target.from_arg({"arch": "aarch64", "python": "3.11", "glibc": "2.36"})]
    assert wh.plan_releases(got / "requirements.lock", got, targets) == wh.plan_releases(
        SOURCE / "requirements.lock", SOURCE, targets
    ), "push builds the very release the pull devices of that platform install"
    # A second resolution is served from the snapshot (the store may be gone by then).
    assert wh.fetch_published_source(url, public, tmp_path / "cache") == got


def test_the_archive_is_byte_identical_for_identical_files(publish, wh, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    assert publish.source_archive(wh, copy) == publish.source_archive(wh, SOURCE)


def test_a_manifest_signed_by_another_key_is_refused(publish, wh, published, tmp_path):
    url, _public, _ = published
    other = publish.keygen(tmp_path / "other" / "publisher.key")
    with pytest.raises(wh.WheelhouseError, match="bad signature"):
        wh.fetch_published_source(url, other, tmp_path / "cache")
    assert not (tmp_path / "cache" / "sources").exists(), "nothing was fetched past the manifest"


def test_a_changed_archive_is_refused_and_nothing_is_kept(wh, published, store, tmp_path):
    url, public, manifest = published
    archive = store[0] / "source" / manifest["client_source_sha256"] / "voice_client.tar"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(wh.WheelhouseError, match="size or sha256"):
        wh.fetch_published_source(url, public, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "sources").glob("sha256-*"))


def test_a_manifest_for_another_version_is_refused(wh, published, tmp_path):
    url, public, _ = published
    with pytest.raises(wh.WheelhouseError, match=r"not 9\.9\.9"):
        wh.fetch_published_source(url, public, tmp_path / "cache", "9.9.9")


def test_a_re_signed_archive_with_other_files_is_refused(publish, wh, published, store, tmp_path):
    """A key holder's archive whose files do not digest to the signed value (a forged manifest)."""
    url, public, manifest = published
    release = store[0] / "source" / manifest["client_source_sha256"]
    extra = tmp_path / "extra"
    shutil.copytree(SOURCE, extra / "voice_client", ignore=shutil.ignore_patterns("__pycache__"))
    (extra / "voice_client" / "added.py").write_text("print('not published')\n")
    archive = publish.source_archive(wh, extra / "voice_client")
    (release / "voice_client.tar").write_bytes(archive)
    forged = dict(
        manifest,
        files={
            "voice_client.tar": {
                "sha256": hashlib.sha256(archive).hexdigest(),
                "size": len(archive),
            }
        },
    )
    data = (json.dumps(forged, indent=2, sort_keys=True) + "\n").encode()
    key = publish.load_private_key(tmp_path / "keys" / "publisher.key")
    (release / "manifest.json").write_bytes(data)
    (release / "manifest.json.sig").write_bytes(publish.sign(key, data))
    with pytest.raises(wh.WheelhouseError, match="digest to"):
        wh.fetch_published_source(url, public, tmp_path / "cache")


def test_a_row_that_is_not_a_published_manifest_is_named(wh, tmp_path):
    for url in ("git:abc123", "/srv/voice_client", "ftp://h/{platform}/1/manifest.json"):
        with pytest.raises(wh.WheelhouseError, match="not the URL of a published release manifest"):
            wh.fetch_published_source(url, tmp_path / "k.pub", tmp_path / "cache")


def test_the_signature_check_is_the_agent_s(wh, publish, tmp_path):
    files = wh.voice_fleet_files  # the module the pull agent carries to the device
    public = publish.keygen(tmp_path / "publisher.key").read_bytes()
    key = publish.load_private_key(tmp_path / "publisher.key")
    files.verify_signature(public, b"data", publish.sign(key, b"data"))
    for data, signature, match in (
        (b"datA", publish.sign(key, b"data"), "bad signature"),
        (b"data", b"not base64!", "bad signature"),
        (b"data", base64.b64encode(b"x" * 64), "bad signature"),
    ):
        with pytest.raises(files.SignatureError, match=match):
            files.verify_signature(public, data, signature)
    with pytest.raises(files.SignatureError, match="publisher key"):
        files.verify_signature(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", b"d", b"")
