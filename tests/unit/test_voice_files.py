"""voice_files, run as Ansible runs it (a subprocess with its arguments file) on real files.

The module is voice_service's one run for the client's directories, the identity's owner and
mode, its small files and its link: what each builtin task did, it must do (and say) too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from device_module import ROOT, run_device_module

MODULE = ROOT / "plugins" / "modules" / "voice_files.py"


def run(tmp_path: Path, items: list[dict], *, check: bool = False, diff: bool = False) -> tuple[int, dict]:
    args = {"items": items, "_ansible_check_mode": check, "_ansible_diff": diff}
    return run_device_module(MODULE, args, tmp_path)


def attrs(path: Path) -> tuple[int, int, str]:
    st = path.lstat()
    return st.st_uid, st.st_gid, f"{stat.S_IMODE(st.st_mode):04o}"


def layout(tmp_path: Path) -> list[dict]:
    base = tmp_path / "dev"
    return [
        {"path": str(base / "opt" / "releases"), "state": "directory", "owner": "root", "mode": "0755"},
        {"path": str(base / "etc"), "state": "directory", "group": "daemon", "mode": "0750"},
        {"path": str(base / "etc" / "unit"), "state": "file", "content": "[Unit]\nA=1\n", "mode": "0644"},
        {"path": str(base / "id"), "state": "attributes", "owner": "daemon", "mode": "0600"},
        {"path": str(base / "bin"), "state": "link", "target": "/opt/voice-client/current/venv/bin"},
    ]


def test_a_layout_is_made_then_a_rerun_changes_nothing(tmp_path: Path) -> None:
    items = layout(tmp_path)
    base = tmp_path / "dev"
    rc, planned = run(tmp_path, items, check=True)
    assert rc == 0 and planned["changed"], planned
    assert not base.exists(), "check mode touched the disk"
    rc, made = run(tmp_path, items)
    assert rc == 0, made
    assert made["changed_paths"] == [i["path"] for i in items if i["state"] != "attributes"]
    assert attrs(base / "opt" / "releases")[2] == "0755"
    assert attrs(base / "etc")[1:] == (1, "0750"), "daemon's group (gid 1)"
    assert (base / "etc" / "unit").read_text() == "[Unit]\nA=1\n"
    assert attrs(base / "etc" / "unit")[2] == "0644"
    assert not (base / "id").exists(), "attributes never make a file"
    assert os.readlink(base / "bin") == "/opt/voice-client/current/venv/bin"
    assert not [p for p in (base / "etc").iterdir() if p.name.startswith(".")], "no temporary file is left"
    for check in (False, True):
        rc, again = run(tmp_path, items, check=check)
        assert rc == 0 and again == {**again, "changed": False, "changed_paths": []}, again


def test_hand_edits_are_put_back_and_shown_in_the_diff(tmp_path: Path) -> None:
    items = layout(tmp_path)
    base = tmp_path / "dev"
    assert run(tmp_path, items)[0] == 0
    (base / "etc" / "unit").write_text("[Unit]\nA=2\n")
    os.chmod(base / "etc", 0o755)  # noqa: S103 - a hand edit to put back
    (base / "id").write_text("kept\n")
    os.chmod(base / "id", 0o644)
    (base / "bin").unlink()
    (base / "bin").symlink_to("/bin/true")
    rc, fixed = run(tmp_path, items, diff=True)
    assert rc == 0, fixed
    assert fixed["changed_paths"] == [str(base / n) for n in ("etc", "etc/unit", "id", "bin")]
    by_path = {d["after_header"]: d for d in fixed["diff"]}
    assert by_path[str(base / "etc" / "unit")]["before"] == "[Unit]\nA=2\n"
    assert by_path[str(base / "etc" / "unit")]["after"] == "[Unit]\nA=1\n"
    assert by_path[str(base / "bin")]["before"] == "-> /bin/true\n"
    assert (base / "etc" / "unit").read_text() == "[Unit]\nA=1\n"
    assert attrs(base / "etc")[2] == "0750"
    assert attrs(base / "id") == (1, 0, "0600") and (base / "id").read_text() == "kept\n", (
        "content never touched"
    )
    assert os.readlink(base / "bin") == "/opt/voice-client/current/venv/bin"


def test_a_file_keeps_its_inode_when_only_its_mode_differs(tmp_path: Path) -> None:
    items = layout(tmp_path)
    unit = tmp_path / "dev" / "etc" / "unit"
    assert run(tmp_path, items)[0] == 0
    inode = unit.stat().st_ino
    os.chmod(unit, 0o600)
    rc, fixed = run(tmp_path, items)
    assert rc == 0 and fixed["changed_paths"] == [str(unit)], fixed
    assert unit.stat().st_ino == inode and attrs(unit)[2] == "0644"


def test_a_user_that_does_not_exist_is_named_and_later_items_are_left(tmp_path: Path) -> None:
    items = layout(tmp_path)
    items[1] = {**items[1], "owner": "no-such-voice-user"}
    rc, result = run(tmp_path, items)
    assert rc != 0 and "no user named 'no-such-voice-user'" in result["msg"], result
    assert result["changed_paths"] == [items[0]["path"]], "the items before it were made"
    assert not Path(items[2]["path"]).exists(), "nothing after the failed item"
    # In check mode the user may be one an earlier task would make: pending, not a failure.
    rc, planned = run(tmp_path, items, check=True)
    assert rc == 0 and items[1]["path"] in planned["changed_paths"], planned


def test_a_directory_where_a_file_should_be_is_refused_by_name(tmp_path: Path) -> None:
    items = layout(tmp_path)
    Path(items[2]["path"]).mkdir(parents=True)
    rc, result = run(tmp_path, items)
    assert (
        rc != 0 and result["msg"] == f"{items[2]['path']} is a directory; it should be a file: left as it is"
    )
    assert not Path(items[4]["path"]).is_symlink()


def test_bad_modes_are_named(tmp_path: Path) -> None:
    for mode in ("rw-r--r--", "17777"):
        rc, result = run(tmp_path, [{"path": str(tmp_path / "d"), "state": "directory", "mode": mode}])
        assert rc != 0 and repr(mode) in result["msg"], result


def test_a_directory_kept_elsewhere_behind_a_link_is_followed(tmp_path: Path) -> None:
    # /var/lib/voice-client on a data partition: the link stays, the directory gets its mode.
    real = tmp_path / "data" / "voice-client"
    real.mkdir(parents=True)
    os.chmod(real, 0o777)  # noqa: S103 - a wrong mode to put right
    link = tmp_path / "state"
    link.symlink_to(real)
    rc, result = run(tmp_path, [{"path": str(link), "state": "directory", "group": "daemon", "mode": "0750"}])
    assert rc == 0 and result["changed_paths"] == [str(link)], result
    assert link.is_symlink() and attrs(real)[1:] == (1, "0750")


def test_a_mode_yaml_made_a_number_is_taken_as_the_file_module_takes_it(tmp_path: Path) -> None:
    # mode: 0644 without quotes is the number 420 by the time it reaches the module.
    target = tmp_path / "f"
    rc, result = run(tmp_path, [{"path": str(target), "state": "file", "content": "x\n", "mode": 0o644}])
    assert rc == 0 and attrs(target)[2] == "0644", result
