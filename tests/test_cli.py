"""`rayprover` maps its subcommands onto the jobs: every job subcommand's --help is the job's own help, and
arguments are forwarded unchanged."""

import importlib
import json
import subprocess
import sys

import pytest

from raylib import cli

EXPECTED = {"iterate", "prove", "train-sft", "encode", "train-ebm", "probe", "evaluate", "report", "bootstrap"}


def test_every_job_subcommand_is_mapped():
    assert EXPECTED <= set(cli.JOBS)
    for name in EXPECTED:
        assert cli.JOBS[name][0] == "jobs." + name.replace("-", "_")


@pytest.mark.parametrize("name", sorted(EXPECTED | {"env-check"}))
def test_job_help_is_the_jobs_own_help(name, capsys):
    module = importlib.import_module(cli.JOBS[name][0])  # fails when the job module is missing
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    first = module.__doc__.strip().splitlines()[0]
    assert out.startswith(f"usage: python -m {module.__name__}") and first in out  # explains what the job does
    assert "--help" in out


@pytest.mark.parametrize("name", ["steps", "config", "theorems"])
def test_builtin_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0 and "--config" in capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in EXPECTED | {"steps", "config"}:
        assert f"    {name}" in out


def test_arguments_are_forwarded_to_the_job(tmp_path):
    """The console entry point as a user runs it: `rayprover report RUN` builds the report."""
    (tmp_path / "r" / "iter_0").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "raylib.cli", "report", str(tmp_path / "r")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"markdown": str(tmp_path / "r" / "report.md"),
                                                               "html": str(tmp_path / "r" / "report.html")}
    proc = subprocess.run([sys.executable, "-m", "raylib.cli", "report", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no such run folder" in proc.stderr


def test_a_missing_job_module_is_named(monkeypatch, capsys):
    monkeypatch.setitem(cli.JOBS, "ghost", ("jobs.no_such_job", "a job that is not there"))
    assert cli.main(["ghost", "--x"]) == 2
    assert "jobs.no_such_job is not part of this installation" in capsys.readouterr().err
