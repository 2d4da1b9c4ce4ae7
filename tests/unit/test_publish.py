"""tools/publish.py without the network: the publisher's key pair, signatures, the store's sequence."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

ROOT = Path(__file__).resolve().parents[2]


def test_keygen_writes_a_private_key_only_its_owner_reads(publish, tmp_path):
    pub = publish.keygen(tmp_path / "k" / "publisher.key")
    assert stat.S_IMODE((tmp_path / "k" / "publisher.key").stat().st_mode) == 0o600
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pub.read_text()
    with pytest.raises(publish.PublishError, match="refusing to replace"):
        publish.keygen(tmp_path / "k" / "publisher.key")


def test_signature_verifies_with_the_public_key_and_fails_on_a_changed_byte(publish, tmp_path):
    pub = publish.keygen(tmp_path / "publisher.key")
    key = publish.load_private_key(tmp_path / "publisher.key")
    data = json.dumps({"sequence": 1}).encode()
    signature = base64.b64decode(publish.sign(key, data))
    public = load_pem_public_key(pub.read_bytes())
    public.verify(signature, data)
    with pytest.raises(InvalidSignature):
        public.verify(signature, data.replace(b"1", b"2"))


def test_a_key_readable_by_others_is_refused(publish, tmp_path):
    publish.keygen(tmp_path / "publisher.key")
    (tmp_path / "publisher.key").chmod(0o644)
    with pytest.raises(publish.PublishError, match="readable by others"):
        publish.load_private_key(tmp_path / "publisher.key")


def test_sequence_grows_and_never_falls_below_a_manifest_in_the_store(publish, tmp_path):
    store = tmp_path / "store"
    with publish.store_lock(store):
        assert publish.next_sequence(store) == 1
        assert publish.next_sequence(store) == 2
    (store / "sequence").unlink()
    release = store / "cp311-x86_64" / "1.0.0-abc"
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(json.dumps({"sequence": 41}))
    with publish.store_lock(store):
        assert publish.next_sequence(store) == 42


def test_platforms_are_checked(publish):
    wh = publish.wheelhouse_module()
    assert publish.parse_platform("cp311-aarch64", "2.36", wh).key == "cp311-aarch64"
    with pytest.raises(publish.PublishError, match="cp311-x86_64"):
        publish.parse_platform("x86_64", "2.36", wh)
