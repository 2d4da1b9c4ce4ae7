"""Every molecule scenario of the repository, run on the test bed.

Scenarios are discovered: roles/<role>/molecule/<scenario>/ and
molecule/<scenario>/. A scenario's molecule.yml may carry a line
`# pytest-marks: slow` to join more marker groups, `# pytest-secrets: VALUE`
lines naming secrets that must never appear in the run's output, and
`# pytest-needs: stack` to run with the local registry's SUPABASE_* settings
(whose keys then must never appear in the output either), or `# pytest-needs:
arm64` to run on the emulated aarch64 image instead of the native one.

Every secret is looked for in the scenario's whole log (as is, and inside base64
text at each byte alignment), whether the run passed or not: a secret in the log
fails the test, naming the secret's source and the line, never its value.

    make molecule               all of them
    make molecule S=smoke       the ones whose id contains "smoke"
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / ".cache" / "molecule-logs"


@dataclass(frozen=True)
class Scenario:
    project: Path  # where molecule runs (a role, or the repository root)
    name: str

    @property
    def id(self) -> str:
        owner = "repo" if self.project == ROOT else self.project.name
        return f"{owner}/{self.name}"

    @property
    def instance_prefix(self) -> str:
        owner = "vf" if self.project == ROOT else self.project.name
        return owner.replace("_", "-")

    def directive(self, name: str) -> list[str]:
        """Words after `# pytest-<name>:` lines of the scenario's molecule.yml."""
        text = (self.project / "molecule" / self.name / "molecule.yml").read_text()
        return [
            w for m in re.finditer(rf"^# pytest-{name}:(.*)$", text, re.MULTILINE) for w in m.group(1).split()
        ]

    @property
    def marks(self) -> list[pytest.MarkDecorator]:
        return [getattr(pytest.mark, n) for n in self.directive("marks")]


def secret_forms(secret: str) -> dict[str, str]:
    """A secret as it may show up in a log: as is, and inside base64 text (a slurp of a file that
    holds it, an HTTP basic header) at each of the three byte alignments, full groups only."""
    raw = secret.encode()
    forms = {"as is": secret}
    for start in range(3):
        chunk = raw[start:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        forms[f"base64, alignment {start}"] = base64.b64encode(chunk).decode()
    return forms


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Where the named secrets (name -> value) appear in text: 'name (form) on line N'."""
    found = []
    for name, secret in secrets.items():
        for form, needle in secret_forms(secret).items():
            for number, line in enumerate(text.splitlines(), 1):
                if needle in line:
                    found.append(f"{name} ({form}) on line {number}")
                    break
    return found


def discover() -> list[Scenario]:
    files = sorted(ROOT.glob("molecule/*/molecule.yml")) + sorted(
        ROOT.glob("roles/*/molecule/*/molecule.yml")
    )
    scenarios = [Scenario(f.parent.parent.parent, f.parent.name) for f in files]
    # The emulated ones last: make test builds their image beside the lanes while the others run.
    return sorted(scenarios, key=lambda s: "arm64" in s.directive("needs"))


SCENARIOS = discover()


@pytest.mark.molecule
@pytest.mark.docker
@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.id, marks=s.marks) for s in SCENARIOS])
def test_scenario(scenario: Scenario, bed_image: str, request: pytest.FixtureRequest) -> None:
    if "arm64" in scenario.directive("needs"):
        bed_image = request.getfixturevalue("bed_image_arm64")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / (scenario.id.replace("/", "__") + ".log")
    env = {
        **os.environ,
        "VF_ROOT": str(ROOT),
        "VOICE_FLEET_IMAGE": bed_image,
        "VF_INSTANCE": scenario.instance_prefix,
        "PY_COLORS": "0",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
    }
    secrets = {f"pytest-secrets #{n}": value for n, value in enumerate(scenario.directive("secrets"), 1)}
    if "stack" in scenario.directive("needs"):
        # The registry's settings reach the plays as the operators' do: SUPABASE_* variables.
        stack = request.getfixturevalue("stack_env")
        env.update(stack)
        secrets |= {name: stack[name] for name in ("SUPABASE_SERVICE_KEY", "SUPABASE_ANON_KEY")}
    short = {name: value for name, value in secrets.items() if len(value) < 12}
    assert not short, f"secrets too short to search a log for (empty, or matching by chance): {list(short)}"
    with log.open("w") as out:
        proc = subprocess.run(
            ["molecule", "test", "-s", scenario.name],
            cwd=scenario.project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    text = log.read_text(errors="replace")
    # Searched whether the run passed or not: a failing task is where a secret is most likely printed.
    # The message names the secret and the line, never its value.
    leaked = leaks(text, secrets)
    failures = [f"secrets appear in the log {log}: " + "; ".join(leaked)] if leaked else []
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-80:])
        for name, secret in secrets.items():  # the test's own report never shows a secret either
            for needle in secret_forms(secret).values():
                tail = tail.replace(needle, f"<{name}>")
        failures.append(
            f"molecule test -s {scenario.name} in {scenario.project} failed (full log: {log}):\n{tail}"
        )
    if failures:
        pytest.fail("\n".join(failures))


def test_every_scenario_was_discovered() -> None:
    """A scenario directory without molecule.yml would silently never run."""
    dirs = [p for p in ROOT.glob("molecule/*") if p.is_dir() and p.name != "shared"]
    dirs += [p for p in ROOT.glob("roles/*/molecule/*") if p.is_dir()]
    missing = [str(d.relative_to(ROOT)) for d in dirs if not (d / "molecule.yml").exists()]
    assert not missing, f"scenario directories without molecule.yml: {missing}"
    assert any(s.name == "smoke" for s in SCENARIOS)
