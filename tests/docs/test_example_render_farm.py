"""examples/render_farm.py is a smoke test of the whole farm model: it must run
to completion on the default SQLite file, and the broken worker must end up
blocklisted while the others finish its work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_render_farm_example_runs_every_job_to_completion(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "render_farm.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "statestore.db").exists()  # the default SQLite file
    lines = result.stdout.splitlines()
    assert lines[-1] == "all jobs completed"
    for job in ("shot-010", "shot-020", "gpu-bake"):
        assert f"{job}: completed" in lines
    assert any(line.endswith("broken blocklisted for blender") for line in lines)
