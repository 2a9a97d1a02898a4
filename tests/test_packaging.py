"""The install surface: same dependencies for pip and conda, a working CLI."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from avmae.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == wanted


@pytest.mark.parametrize("command", ["toy", "download", "features", "pretrain", "finetune", "table1"])
def test_every_subcommand_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "avmae.cli", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage: avmae " + command in proc.stdout


def test_bad_settings_json_is_refused():
    args = build_parser().parse_args(["pretrain", "--features", "f", "--out", "o", "--settings", "{oops"])
    with pytest.raises(SystemExit, match="not valid JSON"):
        args.func(args)
