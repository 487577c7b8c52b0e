"""`ray job submit` against a real Ray head started with `ray start --head`, with token authentication
ON (Ray 2.60): the test makes its own token and hands it to the head and the CLI through
RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH, and checks that a client without the token is refused."""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "ray").exists(), reason="the ray CLI is not installed beside python")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head():
    tmp = Path(tempfile.mkdtemp(prefix="rp"))  # short: Ray's socket paths live under the temp dir
    token = tmp / "token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the CLI's own head, not the suite's
    env.update({"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(token), "PYTHONPATH": ""})
    port, dash = _free_port(), _free_port()
    # the agents' ports too: their defaults are fixed, and a head stopped just before may still hold them
    agents = [f"--{flag}={_free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                       "runtime-env-agent-port", "metrics-export-port")]
    subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}", f"--dashboard-port={dash}", *agents,
                    "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={tmp / 'ray'}"],
                   env=env, check=True, capture_output=True, timeout=120)
    yield env, f"http://127.0.0.1:{dash}", tmp
    stop_head(tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def stop_head(tmp: Path, grace_s: float = 5.0) -> None:
    """Stop the head this test started, and only it: its processes name its temp dir. (``ray stop`` would
    stop every Ray on the machine, other test sessions' and the user's own clusters included.)"""
    import signal

    def mine() -> list[int]:
        pids = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and str(tmp).encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                continue
        return pids

    if not Path("/proc").is_dir():  # no process table to read (macOS): the CLI's machine-wide stop
        subprocess.run([str(BIN / "ray"), "stop"], capture_output=True, timeout=120)
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for pid in mine():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while mine() and time.monotonic() < deadline:
            time.sleep(0.2)


def submit(cmd: list, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """``ray job submit``, again while a just-started head's job agent is not up yet (a loaded machine)."""
    deadline = time.monotonic() + 240  # the agent comes up within seconds on a quiet machine, minutes on a busy one
    while True:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(3)


def test_env_check_runs_unchanged_under_ray_job_submit(head):
    env, address, tmp = head
    runs = tmp / "runs"
    cmd = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
           "--runtime-env-json", json.dumps({"excludes": [".venv", ".venv-vllm", "runs", ".git"]}), "--",
           "python", "-m", "jobs.env_check", "--set", "ray.address=auto", "--set", f"run.root={runs}",
           "--set", "theorems.source=builtin:textbook", "--set", "theorems.split=null", "--limit", "6"]
    proc = submit(cmd, env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((runs / "local" / "env_check" / "summary.json").read_text())
    assert summary["theorems"] == 6 and summary["verified"] == 6

    refused = subprocess.run(cmd[:5] + ["--", "python", "-c", "print(1)"], capture_output=True, text=True,
                             env={**env, "RAY_AUTH_TOKEN_PATH": str(tmp / "wrong")}, timeout=120)
    assert refused.returncode != 0 and "AuthenticationError" in refused.stderr


def test_iterate_runs_one_iteration_under_ray_job_submit(head, tiny_model_dir):
    """The main job submitted to the started head (token auth on): one iteration, tiny budget, from scratch."""
    env, address, tmp = head
    runs = tmp / "runs"
    budget = [f"run.root={runs}", "run.name=submitted", f"model.path={tiny_model_dir}", "model.device=cpu",
              "workers.lean=1", "workers.drivers=1", "search.max_nodes=6", "search.num_candidates=4",
              "search.max_tokens=24", "iterate.train_theorems=4", "iterate.heldout_theorems=2",
              "iterate.sft_steps=2", "iterate.value_model=false", "iterate.noise=false", "iterate.sft_probe_steps=true",
              "iterate.prove_max_nodes=16", "iterate.eval_max_nodes=16",
              "sft.batch_size=4", "sft.valid_fraction=0.0",
              "sft.checkpoint_every=2", "sft.eval_every=2", "sft.guards.max_identical_share=1.0",
              "sft.guards.max_empty_share=1.0", "sft.guards.max_repetitive_share=1.0", "sft.guards.probe_states=2",
              "sft.guards.probe_samples=1", "sft.guards.probe_max_tokens=8", "ray.address=auto"]
    cmd = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
           "--runtime-env-json", json.dumps({"excludes": [".venv", ".venv-vllm", "runs", ".git"]}), "--",
           "python", "-m", "jobs.iterate", "--iterations", "1"] + [a for s in budget for a in ("--set", s)]
    proc = submit(cmd, env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"Job '\S+' succeeded", proc.stdout + proc.stderr)  # the CLI's words for SUCCEEDED
    summary = json.loads((runs / "submitted" / "summary.json").read_text())
    (it,) = summary["iterations"]
    assert it["iteration"] == 1 and it["proof_rate_llm"] is not None and isinstance(it["promoted"], bool)
