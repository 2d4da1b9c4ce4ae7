"""ansible-doc shows every filter, and its documented options match the Python signature."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
from pathlib import Path

from mw_plugin import mw

FILTERS = mw.FilterModule().filters()


def test_ansible_doc_documents_every_filter_as_the_code_defines_it(repo_root: Path) -> None:
    proc = subprocess.run(
        ["ansible-doc", "-t", "filter", "--json", *FILTERS],
        cwd=repo_root,
        env={**os.environ, "ANSIBLE_CONFIG": str(repo_root / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(FILTERS)
    for name, function in FILTERS.items():
        doc = docs[name]
        assert doc["doc"]["name"] == name
        assert doc["doc"]["filename"] == str(repo_root / "filter_plugins" / f"{name}.yml")
        assert doc["examples"].strip() and doc["return"]["_value"]["description"]
        parameters = list(inspect.signature(function).parameters.values())
        options = doc["doc"]["options"]
        # The piped value is _input; every other parameter is an option with the same default.
        assert set(options) == {"_input"} | {p.name for p in parameters[1:]}, name
        for parameter in parameters[1:]:
            if parameter.default is inspect.Parameter.empty:
                assert options[parameter.name].get("required") is True, (name, parameter.name)
            else:
                assert options[parameter.name].get("default") == parameter.default, (name, parameter.name)
