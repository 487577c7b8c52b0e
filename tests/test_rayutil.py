"""``ray.address: null`` starts a new local Ray even when a stale ``ray_current_cluster`` file (left by a
``ray start`` head or a test cluster that died) names a dead cluster: plain ``ray.init()`` would try to
join that one and hang on it."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parent.parent


def test_local_ray_ignores_a_stale_current_cluster_file():
    tmp = Path(tempfile.mkdtemp(prefix="rp"))  # short: Ray's socket paths live under it
    try:
        (tmp / "ray").mkdir()
        (tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")  # nothing listens there
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
        code = ("from raylib.config import load_config; from raylib.rayutil import init_ray; import ray; "
                "init_ray(load_config(None, ['ray.num_cpus=1', 'ray.dashboard=false'])); "
                "print('cpus', ray.cluster_resources()['CPU']); ray.shutdown()")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "cpus 1.0" in proc.stdout, proc.stderr[-2000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
