#!/usr/bin/python
"""Make a set of small files, directories and links what they should be, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: voice_files
short_description: Directories, small files and links of a device, in one module run
description:
  - Brings each item of O(items) to its state, in order, and changes only what differs.
    One module run replaces a C(file) task per directory and a C(stat) plus C(copy) per file
    (the provisioning's cost per device is mostly module runs).
  - A file is written through a temporary file in its directory with its owner, group and mode
    set before the rename (fsync, rename, fsync of the directory), so a reader never sees a part
    of it nor another owner.
  - A link is replaced by a rename too; an item that is a directory where a file or a link
    should be fails, naming it, and nothing after it is done.
  - Supports check mode and diff mode (the content of files, and the owner, group and mode of
    every item that changes).
  - Contents pass as module arguments and may show in the device's log; never give it secrets
    (write those with a task of their own, with C(no_log)).
version_added: 1.0.0
author:
  - voice-fleet developers (@javia)
options:
  items:
    description: What to make, in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The absolute path.
        type: path
        required: true
      state:
        description:
          - C(directory) (made with missing parents; a link to a directory is followed, as the
            C(file) module does), C(file) (with O(items[].content)), C(link) (to O(items[].target)).
          - C(attributes) sets owner, group and mode of a regular file that exists, and does
            nothing where there is none (its content is never read or touched).
        type: str
        required: true
        choices: [directory, file, link, attributes]
      content:
        description: The file's whole content (C(state=file)).
        type: str
      target:
        description: Where the link points (C(state=link)).
        type: str
      owner:
        description: Owner by name; unchanged when not given.
        type: str
      group:
        description: Group by name; unchanged when not given.
        type: str
      mode:
        description:
          - Octal mode such as C("0644") (a string), or the number a YAML C(0644) becomes.
          - For a new file or directory without one, 0644 or 0755.
        type: raw
"""

EXAMPLES = r"""
- name: The client's directories, its unit and a link on the PATH
  javia.voice_fleet.voice_files:
    items:
      - {path: /opt/voice-client, state: directory, owner: root, group: root, mode: "0755"}
      - path: /etc/systemd/system/voice-client.service
        state: file
        content: "{{ lookup('ansible.builtin.template', 'voice-client.service.j2') }}"
        mode: "0644"
      - path: /usr/local/bin/voice-client
        state: link
        target: /opt/voice-client/current/venv/bin/voice-client
  register: files
"""

RETURN = r"""
changed_paths:
  description: The paths that were changed (or would be, in check mode), in the order of O(items).
  type: list
  elements: str
  returned: always
"""

import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:  # Ansible ships it with the module (the collection's module_utils).
    from ansible_collections.javia.voice_fleet.plugins.module_utils.voice_fleet_files import (
        fsync_dir,
        write_atomic,
    )
except ImportError:  # pragma: no cover - run from a checkout without the collection's name
    from voice_fleet_files import fsync_dir, write_atomic  # type: ignore[no-redef]

DEFAULT_MODES = {"file": 0o644, "directory": 0o755}


class ItemError(Exception):
    """An item that cannot be brought to its state; the message names it."""


def lookup_id(item: dict, kind: str, check_mode: bool, pending: list[str]) -> int:
    """The uid (kind owner) or gid (kind group) the item names; -1 where it names none.

    In check mode a user or group that an earlier task would have made is not there yet:
    it goes to pending (a change to report) instead of failing.
    """
    name = item.get(kind)
    if not name:
        return -1
    try:
        return pwd.getpwnam(name).pw_uid if kind == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        what = "user" if kind == "owner" else "group"
        if not check_mode:
            raise ItemError(f"{item['path']}: no {what} named {name!r}") from None
        pending.append(f"{what} {name}")
        return -1


def parse_mode(item: dict) -> int | None:
    text = item.get("mode")
    if text in (None, ""):
        return None
    if isinstance(text, bool):
        raise ItemError(f"{item['path']}: mode must be octal such as 0644, got {text!r}")
    try:
        # A YAML 0644 without quotes arrives as the number 420, as Ansible's file module takes it.
        mode = text if isinstance(text, int) else int(str(text), 8)
    except ValueError:
        raise ItemError(f"{item['path']}: mode must be octal such as 0644, got {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise ItemError(f"{item['path']}: mode {text!r} is out of range")
    return mode


def describe(st: os.stat_result | None) -> str:
    if st is None:
        return "absent"
    return f"{st.st_uid}:{st.st_gid}:{stat.S_IMODE(st.st_mode):04o}"


class Applier:
    """Brings items to their state; check_mode only says what it would change."""

    def __init__(self, check_mode: bool, diff: bool):
        self.check_mode = check_mode
        self.diff = diff
        self.changed: list[str] = []
        self.diffs: list[dict] = []

    def note(self, path: str, before: str, after: str) -> None:
        if path not in self.changed:
            self.changed.append(path)
        if self.diff:
            self.diffs.append({"before_header": path, "after_header": path, "before": before, "after": after})

    def attributes(
        self, path: str, st: os.stat_result, want: tuple[int, int, int | None], follow: bool = False
    ) -> None:
        """chown/chmod what differs of an existing entry (a link is followed only when asked)."""
        uid, gid, mode = want
        new_uid = st.st_uid if uid == -1 else uid
        new_gid = st.st_gid if gid == -1 else gid
        new_mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        if (new_uid, new_gid, new_mode) == (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)):
            return
        self.note(path, describe(st) + "\n", f"{new_uid}:{new_gid}:{new_mode:04o}\n")
        if not self.check_mode:
            os.chown(path, new_uid, new_gid, follow_symlinks=follow)
            os.chmod(path, new_mode)

    def apply(self, item: dict) -> None:
        path, state = item["path"], item["state"]
        if not os.path.isabs(path):
            raise ItemError(f"{path}: the path must be absolute")
        pending: list[str] = []
        uid = lookup_id(item, "owner", self.check_mode, pending)
        gid = lookup_id(item, "group", self.check_mode, pending)
        mode = parse_mode(item)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if state == "directory" and st is not None and stat.S_ISLNK(st.st_mode) and os.path.isdir(path):
            st = os.stat(path)  # a directory kept elsewhere (a data partition): followed
        if state == "attributes":
            if st is not None and stat.S_ISREG(st.st_mode):
                if pending:
                    self.note(path, describe(st) + "\n", f"owned by {', '.join(pending)}\n")
                else:
                    self.attributes(path, st, (uid, gid, mode))
            return
        if st is not None and stat.S_ISDIR(st.st_mode) != (state == "directory"):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a directory"
            raise ItemError(f"{path} is {kind}; it should be a {state}: left as it is")
        if pending and st is not None:
            self.note(path, describe(st) + "\n", f"owned by {', '.join(pending)}\n")
            uid = gid = -1
        getattr(self, state)(item, st, (uid, gid, mode))

    def directory(self, item: dict, st: os.stat_result | None, want: tuple[int, int, int | None]) -> None:
        path, (uid, gid, mode) = item["path"], want
        if st is not None:
            self.attributes(path, st, want, follow=stat.S_ISLNK(os.lstat(path).st_mode))
            return
        self.note(path, "absent\n", "directory\n")
        if self.check_mode:
            return
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, DEFAULT_MODES["directory"] if mode is None else mode)
        fsync_dir(os.path.dirname(path))

    def file(self, item: dict, st: os.stat_result | None, want: tuple[int, int, int | None]) -> None:
        path, (uid, gid, mode) = item["path"], want
        content = item.get("content")
        if content is None:
            raise ItemError(f"{path}: state file needs content")
        data = content.encode("utf-8")
        before = None
        if st is not None and stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                before = handle.read()
        if before == data:
            self.attributes(path, st, want)
            return
        old = "" if before is None else before.decode("utf-8", "replace")
        self.note(path, old, content)
        if self.check_mode:
            return
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise ItemError(f"{path}: its directory {parent} does not exist")
        regular = st is not None and stat.S_ISREG(st.st_mode)
        if mode is None:
            mode = stat.S_IMODE(st.st_mode) if regular else DEFAULT_MODES["file"]
        if regular:  # keep what is not given (a link or device file it replaces has none to keep)
            uid = st.st_uid if uid == -1 else uid
            gid = st.st_gid if gid == -1 else gid
        write_atomic(path, data, mode=mode, uid=uid, gid=gid)

    def link(self, item: dict, st: os.stat_result | None, want: tuple[int, int, int | None]) -> None:
        del want  # a link's own owner and mode mean nothing here
        path, target = item["path"], item.get("target")
        if not target:
            raise ItemError(f"{path}: state link needs target")
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == target:
            return
        self.note(
            path,
            ("-> " + os.readlink(path) if st is not None and stat.S_ISLNK(st.st_mode) else describe(st))
            + "\n",
            f"-> {target}\n",
        )
        if self.check_mode:
            return
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.link-tmp")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(path))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "items": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {
                        "type": "str",
                        "required": True,
                        "choices": ["directory", "file", "link", "attributes"],
                    },
                    "content": {"type": "str"},
                    "target": {"type": "str"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                    "mode": {"type": "raw"},
                },
            },
        },
        supports_check_mode=True,
    )
    applier = Applier(module.check_mode, module._diff)
    for item in module.params["items"]:
        try:
            applier.apply(item)
        except (ItemError, OSError) as exc:
            module.fail_json(
                msg=f"{exc}" if isinstance(exc, ItemError) else f"{item['path']}: {exc}",
                changed=bool(applier.changed),
                changed_paths=applier.changed,
            )
    result = {"changed": bool(applier.changed), "changed_paths": applier.changed}
    if applier.diffs:
        result["diff"] = applier.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
