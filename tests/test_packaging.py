"""The install surface: one lock for pip, conda and CI, a working CLI."""

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from avmae.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    """requirements.lock as {normalised name: pinned version}."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[_norm(req.name)] = spec.version
    return pins


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_lock_pins_every_dependency_of_pyproject_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        assert _norm(req.name) in pins, f"{req.name} is not in requirements.lock (refresh it: see its header)"
        assert req.specifier.contains(pins[_norm(req.name)]), (req, pins[_norm(req.name)])


def test_this_environment_is_the_lock():
    """Whatever runs the tests was installed from the lock (README Quickstart, .ci/run)."""
    drift = {name: (version, metadata.version(name)) for name, version in _lock().items()
             if metadata.version(name) != version}
    assert not drift, f"installed versions differ from requirements.lock (pinned, installed): {drift}"


def test_conda_and_the_workflow_env_install_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-r requirements.lock", "-e ."]
    post = (ROOT / "workflow/envs/avmae.post-deploy.sh").read_text()
    assert "pip install --no-deps -r requirements.lock -e ." in post


@pytest.mark.parametrize("command", ["toy", "download", "features", "pretrain", "finetune", "table"])
def test_every_subcommand_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "avmae.cli", command, "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: avmae " + command in proc.stdout


def test_bad_settings_json_is_refused():
    args = build_parser().parse_args(["pretrain", "--features", "f", "--out", "o", "--settings", "{oops"])
    with pytest.raises(SystemExit, match="not valid JSON"):
        args.func(args)


def test_a_test_subprocess_without_a_timeout_is_refused():
    """tests/conftest.py: subprocess.run from a test file needs timeout=, so no test can hang."""
    with pytest.raises(TypeError, match=r"tests must pass timeout= to subprocess.run \(test_packaging.py:\d+\)"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert subprocess.run([sys.executable, "-c", "pass"], check=False, timeout=60).returncode == 0
