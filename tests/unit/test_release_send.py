"""The build action's packing of the wheels a device lacks (plugins/action/voice_release_build.py)."""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path

import pytest
from ansible.errors import AnsibleActionFail


@pytest.fixture(scope="module")
def action():
    from ansible_collections.javia.voice_fleet.plugins.action import voice_release_build  # noqa: PLC0415

    return voice_release_build


def wheel(directory: Path, name: str, body: bytes) -> tuple[str, str]:
    path = directory / name
    path.write_bytes(body)
    return str(path), hashlib.sha256(body).hexdigest()


def test_the_tar_holds_the_wheels_under_their_names_and_is_packed_once(action, tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    a_path, a_sha = wheel(house, "a-1.0-py3-none-any.whl", b"A")
    b_path, b_sha = wheel(house, "b-2.0-py3-none-any.whl", b"BB")
    wheels = {"a-1.0-py3-none-any.whl": a_sha, "b-2.0-py3-none-any.whl": b_sha}
    send = {"a-1.0-py3-none-any.whl": a_path, "b-2.0-py3-none-any.whl": b_path}
    packed = action.pack(send, wheels, str(tmp_path / "packs"))
    with tarfile.open(packed) as tar:
        assert sorted(tar.getnames()) == sorted(send)
        assert tar.extractfile("b-2.0-py3-none-any.whl").read() == b"BB"
    mtime = Path(packed).stat().st_mtime_ns
    assert action.pack(dict(reversed(list(send.items()))), wheels, str(tmp_path / "packs")) == packed
    assert Path(packed).stat().st_mtime_ns == mtime  # the same wheels reuse the same file
    other = action.pack({"a-1.0-py3-none-any.whl": a_path}, wheels, str(tmp_path / "packs"))
    assert other != packed


def test_a_file_that_is_not_the_named_wheel_is_refused_by_name(action, tmp_path):
    path, sha = wheel(tmp_path, "a-1.0-py3-none-any.whl", b"A")
    with pytest.raises(AnsibleActionFail, match=r"'c-1.0-py3-none-any.whl' -> '.*a-1.0-py3-none-any.whl'"):
        action.pack({"c-1.0-py3-none-any.whl": path}, {"c-1.0-py3-none-any.whl": sha}, str(tmp_path / "p"))
    with pytest.raises(
        AnsibleActionFail, match=re.escape("'a-1.0-py3-none-any.whl', which is not a wheel of the release")
    ):
        action.pack({"a-1.0-py3-none-any.whl": path}, {}, str(tmp_path / "p"))
