"""awx/configure.yml: AWX objects as code, checked without an AWX (none runs here).

- Every awx.awx task's arguments, rendered by Ansible's own templating with the example
  settings, pass the module's argument spec (from `ansible-doc --json`), checked with
  Ansible's own ArgumentSpecValidator: names, aliases, types, choices, list elements.
- What AWX itself would reject or misuse: survey specs (AWX's own rules), playbooks the
  project lacks, survey variables the plays never read, the schedule's RRULE.
- For real: ansible-playbook --syntax-check and ansible-lint (production); a run against a
  closed loopback port reaches the first awx.awx module with valid arguments and fails on
  the connection, without printing a secret.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import ansible_runner
import pytest
import yaml
from dateutil.rrule import rrulestr

ROOT = Path(__file__).resolve().parents[2]
AWX = ROOT / "awx"
BIN = Path(sys.executable).parent
RRULE = "DTSTART;TZID=UTC:20260101T000000 RRULE:FREQ=HOURLY;INTERVAL=1"
SITE = {
    "awx_controller_host": "https://awx.example.test",
    "awx_ee_image": "registry.example.test/voice-fleet/ee:1",
    "awx_project_scm_url": "https://git.example.test/voice-fleet.git",
    "awx_machine_ssh_key_file": str(ROOT / "awx" / "vars.yml"),  # any readable file
    "awx_supabase_url": "https://registry.example.test",
    "awx_supabase_service_key": "service-key",
}
# AWX's survey question types and the Python types their defaults must have.
SURVEY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "textarea": (str,),
    "password": (str,),
    "multiplechoice": (str,),
    "multiselect": (str,),
    "integer": (int,),
    "float": (float, int),
}


def awx_tasks(play: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(task name, module, args, task) of every awx.awx task of the play."""
    for task in play["tasks"]:
        for key, args in task.items():
            if key.startswith("awx.awx."):
                yield task["name"], key, args, task


@pytest.fixture(scope="module")
def play() -> dict[str, Any]:
    (only,) = yaml.load((AWX / "configure.yml").read_text(), Loader=_Yaml)  # noqa: S506 (SafeLoader subclass)
    return only


class _Yaml(yaml.SafeLoader):
    """Safe YAML keeping Ansible's !unsafe scalars as plain strings."""


_Yaml.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


@pytest.fixture(scope="module")
def specs(play: dict[str, Any]) -> dict[str, dict[str, Any]]:
    modules = sorted({module for _, module, _, _ in awx_tasks(play)})
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "-t", "module", *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    docs = json.loads(proc.stdout)
    assert sorted(docs) == modules
    return {name: doc["doc"]["options"] for name, doc in docs.items()}


def argument_spec(options: dict[str, Any]) -> dict[str, Any]:
    """An AnsibleModule argument_spec from a module's documented options."""
    spec = {}
    for name, option in options.items():
        entry = {
            k: option[k]
            for k in ("type", "choices", "elements", "aliases", "required", "default")
            if k in option
        }
        if "suboptions" in option:
            entry["options"] = argument_spec(option["suboptions"])
        spec[name] = entry
    return spec


@pytest.fixture(scope="module")
def rendered(play: dict[str, Any]) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """(task, module, args) with module_defaults merged and every template rendered by Ansible.

    Ansible's collection loader is installed for this module only: left in the import system,
    it refuses the imports of the collection's plugins that later tests make (the collection's
    package was imported before it, without its metadata).
    """
    from ansible.plugins.loader import init_plugin_loader  # noqa: PLC0415 (after pytest set up the venv)
    from ansible.utils.collection_loader import AnsibleCollectionConfig  # noqa: PLC0415
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder  # noqa: PLC0415

    init_plugin_loader([])
    try:
        yield render(play)
    finally:
        _AnsibleCollectionFinder._remove()  # Ansible has no public way back
        AnsibleCollectionConfig._collection_finder = None


def render(play: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415 (after pytest set up the venv)
    from ansible.template import Templar  # noqa: PLC0415

    loader = DataLoader()
    loader.set_basedir(str(AWX))
    trusted = loader.load_from_file(str(AWX / "configure.yml"), trusted_as_template=True)[0]
    variables = {
        **loader.load_from_file(str(AWX / "vars.yml"), trusted_as_template=True),
        **trusted["vars"],
        **SITE,  # extra vars win, as with -e
        "ansible_playbook_python": sys.executable,
    }
    defaults = trusted["module_defaults"]["group/awx.awx.controller"]
    result = []
    for (name, module, _, task), trusted_task in zip(awx_tasks(play), awx_tasks(trusted), strict=True):
        raw_args = {**defaults, **trusted_task[2]}
        templar = Templar(loader=loader, variables={**variables, **trusted_task[3].get("vars", {})})
        items = templar.template(trusted_task[3]["loop"]) if "loop" in task else [None]
        for item in items:
            with_item = Templar(loader=loader, variables={**templar.available_variables, "item": item})
            result.append((name, module, with_item.template(raw_args)))
    return result


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    """A venv tool run in the repository, needing no registry (as `make lint` runs them)."""
    env = {**os.environ, "ANSIBLE_INVENTORY": "localhost,"}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_syntax_check() -> None:
    proc = tool("ansible-playbook", "-i", "localhost,", "--syntax-check", "awx/configure.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production() -> None:
    proc = tool("ansible-lint", "--offline", "awx/")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr


def test_every_awx_task_passes_its_module_argument_spec(rendered: list, specs: dict) -> None:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    assert {module for _, module, _ in rendered} >= {
        "awx.awx.organization",
        "awx.awx.execution_environment",
        "awx.awx.credential_type",
        "awx.awx.credential",
        "awx.awx.project",
        "awx.awx.inventory",
        "awx.awx.inventory_source",
        "awx.awx.job_template",
        "awx.awx.schedule",
    }
    problems = []
    for name, module, args in rendered:
        result = ArgumentSpecValidator(argument_spec(specs[module])).validate(dict(args))
        problems += [f"{name} ({module}): {message}" for message in result.error_messages]
    assert not problems, "\n".join(problems)


def test_the_validation_rejects_what_awx_would(specs: dict) -> None:
    """The check above can fail: a misspelt option, a wrong type and a bad choice are caught."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    validator = ArgumentSpecValidator(argument_spec(specs["awx.awx.job_template"]))
    result = validator.validate(
        {"name": "x", "job_slice_count": "many", "job_type": "walk", "allow_simultanous": 1}
    )
    text = " ".join(result.error_messages)
    assert "allow_simultanous" in text
    assert "job_slice_count" in text
    assert "job_type" in text


def by_module(rendered: list, module: str) -> list[dict[str, Any]]:
    return [args for _, name, args in rendered if name == module]


def test_supabase_credential_type_injects_the_registry_settings(rendered: list) -> None:
    (ctype,) = by_module(rendered, "awx.awx.credential_type")
    assert ctype["kind"] == "cloud"
    fields = {field["id"]: field for field in ctype["inputs"]["fields"]}
    assert fields["supabase_service_key"]["secret"] is True
    assert not fields["supabase_url"].get("secret")
    assert set(ctype["inputs"]["required"]) == set(fields) == {"supabase_url", "supabase_service_key"}
    # AWX renders these at launch: Ansible must have left them alone (!unsafe).
    assert ctype["injectors"] == {
        "env": {"SUPABASE_URL": "{{ supabase_url }}", "SUPABASE_SERVICE_KEY": "{{ supabase_service_key }}"}
    }
    registry = next(
        c for c in by_module(rendered, "awx.awx.credential") if c["credential_type"] == ctype["name"]
    )
    assert registry["inputs"] == {
        "supabase_url": SITE["awx_supabase_url"],
        "supabase_service_key": "service-key",
    }


def test_secrets_stay_out_of_the_log(play: dict[str, Any]) -> None:
    for name, module, _args, task in awx_tasks(play):
        if module == "awx.awx.credential":
            assert task.get("no_log") is True, name
    text = (AWX / "vars.yml").read_text() + (AWX / "configure.yml").read_text()
    assert not re.search(r"(token|key|password)\s*:\s*['\"]?[A-Za-z0-9]{16,}", text, re.IGNORECASE)


def test_inventory_comes_from_the_projects_supabase_yml(rendered: list) -> None:
    (source,) = by_module(rendered, "awx.awx.inventory_source")
    (inventory,) = by_module(rendered, "awx.awx.inventory")
    (project,) = by_module(rendered, "awx.awx.project")
    (ctype,) = by_module(rendered, "awx.awx.credential_type")
    registry = next(
        c for c in by_module(rendered, "awx.awx.credential") if c["credential_type"] == ctype["name"]
    )
    assert (source["source"], source["source_project"], source["inventory"]) == (
        "scm",
        project["name"],
        inventory["name"],
    )
    assert (ROOT / source["source_path"]).is_file()
    assert source["source_path"].endswith("supabase.yml")  # the plugin's verify_file suffix
    assert source["update_on_launch"] is True
    assert source["overwrite"] is True
    assert source["credential"] == registry["name"]
    # The default EE lacks supabase-py: the sync must run in this repository's EE.
    assert source["execution_environment"] == by_module(rendered, "awx.awx.execution_environment")[0]["name"]
    assert project["scm_type"] == "git"
    assert project["scm_url"] == SITE["awx_project_scm_url"]
    assert project["scm_branch"] == "main"


def validate_survey(spec: dict[str, Any]) -> list[str]:  # noqa: PLR0912 (one branch per AWX rule)
    """AWX's survey_spec checks (JobTemplateSurveySpec._validate_spec_data), as errors."""
    errors = [
        f"'{key}' missing or not {kind.__name__}"
        for key, kind in (("name", str), ("description", str), ("spec", list))
        if not isinstance(spec.get(key), kind)
    ]
    if errors or not spec["spec"]:
        return errors or ["'spec' has no questions"]
    seen = set()
    for index, question in enumerate(spec["spec"]):
        where = f"question {index}"
        for key, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(question.get(key), kind):
                errors.append(f"{where}: '{key}' missing or not {kind.__name__}")
        if question.get("variable") in seen:
            errors.append(f"{where}: variable {question['variable']} repeated")
        seen.add(question.get("variable"))
        qtype = question.get("type")
        if qtype not in SURVEY_TYPES:
            errors.append(f"{where}: type {qtype!r} is not one of {sorted(SURVEY_TYPES)}")
            continue
        default = question.get("default", "")
        if default != "" and not isinstance(default, SURVEY_TYPES[qtype]):
            errors.append(f"{where}: default {default!r} is not a {qtype}")
        for key in ("min", "max"):
            if question.get(key) is not None and not isinstance(question[key], int):
                errors.append(f"{where}: {key} must be an integer")
        if qtype in ("multiplechoice", "multiselect"):
            choices = question.get("choices")
            if not choices:
                errors.append(f"{where}: {qtype} needs choices")
            elif default != "" and default not in choices:
                errors.append(f"{where}: default {default!r} is not among {choices}")
        if (
            qtype == "integer"
            and default != ""
            and not question.get("min", default) <= default <= question.get("max", default)
        ):
            errors.append(f"{where}: default {default} outside min..max")
    return errors


def playbook_text(playbook: str) -> str:
    """The play and everything it can read from playbooks/ (vars files, included tasks)."""
    files = [
        ROOT / playbook,
        *(ROOT / "playbooks" / "vars").glob("*.yml"),
        *(ROOT / "playbooks" / "tasks").glob("*.yml"),
    ]
    return "\n".join(path.read_text() for path in files if path.is_file())


def test_job_templates(rendered: list) -> None:
    templates = {jt["name"]: jt for jt in by_module(rendered, "awx.awx.job_template")}
    assert sorted(jt["playbook"] for jt in templates.values()) == [
        "playbooks/rollback.yml",
        "playbooks/rollout.yml",
        "playbooks/scheduled.yml",
    ]
    credentials = {c["name"] for c in by_module(rendered, "awx.awx.credential")}
    for name, jt in templates.items():
        assert (ROOT / jt["playbook"]).is_file(), f"{name}: the project has no {jt['playbook']}"
        assert jt["allow_simultaneous"] is False, name
        assert jt["use_fact_cache"] is True, name
        assert set(jt["credentials"]) == credentials, name
        assert int(jt["job_slice_count"]) == 1, f"{name}: slicing is opt-in (awx/vars.yml)"
        if jt.get("survey_spec"):
            assert jt["survey_enabled"] is True
            assert validate_survey(jt["survey_spec"]) == [], name
            text = playbook_text(jt["playbook"])
            unread = [
                q["variable"]
                for q in jt["survey_spec"]["spec"]
                if not re.search(rf"\b{q['variable']}\b", text)
            ]
            assert not unread, f"{name}: survey variables the play never reads: {unread}"
        else:
            assert jt["survey_enabled"] is False
    rollout = next(jt for jt in templates.values() if jt["playbook"] == "playbooks/rollout.yml")
    assert {q["variable"] for q in rollout["survey_spec"]["spec"]} >= {"rollout_ref", "rollout_target"}
    assert rollout["ask_variables_on_launch"] is True  # rollout_batches: a list, which no survey types
    assert rollout["ask_scm_branch_on_launch"] is True


def test_survey_validation_catches_awx_rejections() -> None:
    bad = {
        "name": "x",
        "description": "",
        "spec": [
            {"type": "integer", "question_name": "n", "variable": "n", "required": True, "default": "5"},
            {
                "type": "multiplechoice",
                "question_name": "c",
                "variable": "n",
                "required": True,
                "default": "z",
            },
            {"type": "date", "question_name": "d", "variable": "d", "required": "yes"},
        ],
    }
    errors = " | ".join(validate_survey(bad))
    assert "default '5' is not a integer" in errors
    assert "variable n repeated" in errors
    assert "multiplechoice needs choices" in errors
    assert "type 'date'" in errors
    assert "'required' missing or not bool" in errors


def test_hourly_schedule_in_utc(rendered: list) -> None:
    (schedule,) = by_module(rendered, "awx.awx.schedule")
    scheduled = next(
        jt for jt in by_module(rendered, "awx.awx.job_template") if jt["playbook"].endswith("scheduled.yml")
    )
    assert schedule["unified_job_template"] == scheduled["name"]
    assert schedule["rrule"] == RRULE
    assert schedule["enabled"] is True
    # AWX parses the rule with dateutil (DTSTART and RRULE on separate lines).
    rule = rrulestr(schedule["rrule"].replace(" RRULE:", "\nRRULE:"), forceset=True)
    # Across the US and EU spring-forward nights: one run every elapsed hour, at minute 0 UTC.
    runs = rule.between(
        dt.datetime(2026, 3, 7, 23, tzinfo=dt.UTC), dt.datetime(2026, 3, 29, 5, tzinfo=dt.UTC)
    )
    assert len(runs) == 21 * 24 + 5
    assert {b - a for a, b in itertools.pairwise(runs)} == {dt.timedelta(hours=1)}
    assert {(r.utcoffset(), r.minute) for r in runs} == {(dt.timedelta(0), 0)}


def test_every_setting_is_documented_and_used() -> None:
    settings = set(yaml.safe_load((AWX / "vars.yml").read_text()))
    used = set(re.findall(r"\bawx_[a-z0-9_]+", (AWX / "configure.yml").read_text()))
    assert used - settings == set(), "used in configure.yml but not in awx/vars.yml"
    assert settings - used == set(), "in awx/vars.yml but never used"


def test_operations_doc_names_only_real_settings() -> None:
    settings = set(yaml.safe_load((AWX / "vars.yml").read_text()))
    named = set(re.findall(r"(?<![A-Za-z_])awx_[a-z_]+", (ROOT / "docs" / "OPERATIONS.md").read_text()))
    assert named
    assert named - settings == set()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_configure(tmp_path: Path, env: dict[str, str], extravars: dict[str, str]) -> ansible_runner.Runner:
    """awx/configure.yml through ansible-runner, with only the given AWX/Supabase environment."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "SUPABASE_", "ANSIBLE_"))
    }
    private = tmp_path / "private"
    private.mkdir()
    # ansible-runner starts the play with this process's environment under envvars: a shell
    # that sourced the registry's settings (. .stack/env) would set what the test leaves unset.
    with mock.patch.dict(os.environ, clean, clear=True):
        return ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(ROOT),
            playbook="awx/configure.yml",
            inventory="localhost,",
            envvars={**clean, **env},
            extravars=extravars,
            quiet=True,
            timeout=300,
        )


def failures(runner: ansible_runner.Runner) -> list[dict[str, Any]]:
    return [e["event_data"] for e in runner.events if e["event"] == "runner_on_failed"]


def awx_actions(runner: ansible_runner.Runner) -> list[str]:
    return [
        e["event_data"]["task_action"]
        for e in runner.events
        if e["event"] == "playbook_on_task_start" and e["event_data"]["task_action"].startswith("awx.awx.")
    ]


def test_missing_settings_stop_the_play_before_awx(tmp_path: Path) -> None:
    runner = run_configure(tmp_path, {"SUPABASE_SERVICE_KEY": "svc-key-8f3a1c77e2"}, {})
    assert runner.rc == 2
    (failed,) = failures(runner)
    assert failed["task"] == "Check the settings before anything changes in AWX"
    message = failed["res"]["msg"]
    for name in ("awx_controller_host", "awx_ee_image", "awx_project_scm_url", "awx_machine_ssh_key_file"):
        assert name in message
    assert "awx_supabase_url" in message
    assert "awx_supabase_service_key" not in message  # it is set (from the environment)
    assert awx_actions(runner) == []
    assert not secret_in_artifacts(tmp_path, "svc-key-8f3a1c77e2")


def secret_in_artifacts(tmp_path: Path, secret: str) -> list[str]:
    """Output files of the run (stdout, stderr, every event) that contain the secret.

    Not checked: env/envvars (the input) and artifacts/<id>/command, ansible-runner's own
    record of the environment it ran with (mode 0600; docs/OPERATIONS.md says so).
    """
    outputs = [
        p for p in (tmp_path / "private" / "artifacts").rglob("*") if p.is_file() and p.name != "command"
    ]
    assert any(p.parent.name == "job_events" for p in outputs)
    return [str(p) for p in outputs if secret in p.read_text(errors="replace")]


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_a_real_run_reaches_awx_with_valid_arguments(tmp_path: Path, with_token: bool) -> None:
    key_file = tmp_path / "device_key"
    key_file.write_text("stand-in: the credential task is never reached\n")
    host = f"https://127.0.0.1:{closed_port()}"
    env = {
        "CONTROLLER_HOST": host,
        "SUPABASE_URL": "https://registry.invalid",
        "SUPABASE_SERVICE_KEY": "svc-key-8f3a1c77e2",
    }
    if with_token:
        env["CONTROLLER_OAUTH_TOKEN"] = "awx-token-5d9b02e4c1"
    extravars = {
        "awx_ee_image": "registry.invalid/voice-fleet/ee:1",
        "awx_project_scm_url": "https://git.invalid/voice-fleet.git",
        "awx_machine_ssh_key_file": str(key_file),
    }
    runner = run_configure(tmp_path, env, extravars)

    assert runner.rc == 2
    # The preflight passed and the first AWX task ran: its arguments passed the module's own
    # validation (a bad one fails there, before any request), then the connection failed.
    assert awx_actions(runner) == ["awx.awx.organization"]
    (failed,) = failures(runner)
    assert failed["task_action"] == "awx.awx.organization"
    assert f"{host}/api/v2/organizations/" in failed["res"]["msg"]
    assert "Connection refused" in failed["res"]["msg"]
    args = failed["res"]["invocation"]["module_args"]
    assert args["controller_host"] == host
    assert args["validate_certs"] is True
    # The token reaches the module (masked in its output); without one, the option is omitted.
    assert args["controller_oauthtoken"] == ("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" if with_token else None)
    for secret in ("awx-token-5d9b02e4c1", "svc-key-8f3a1c77e2"):
        assert secret_in_artifacts(tmp_path, secret) == []
