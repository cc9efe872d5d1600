"""benchmarks/speed_against_revision.py: each worker runs the code it was given, and the table compares them."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("workload", ["stream", "bc"])
def test_an_earlier_revision_and_today_run_side_by_side(tmp_path, workload):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    output = tmp_path / "table.md"
    command = [sys.executable, "speed_against_revision.py", "--workload", workload, "--revision", "HEAD", "--t", "25"]
    command += ["--episodes", "40", "--rounds", "2", "--work", "2", "--skip-compiled", "--output", str(output)]
    subprocess.run(command, cwd=ROOT / "benchmarks", check=True, capture_output=True, timeout=600)
    rows = [line for line in output.read_text().splitlines() if line.startswith("| HEAD") or line.startswith("| today")]
    assert [row.split(" | ")[0] for row in rows] == ["| HEAD, eager", "| today, eager"]
    assert rows[0].endswith("| 1.00x (1.00 - 1.00) |")  # the baseline against itself
    prepared = int(rows[1].split(" | ")[1].replace(",", ""))
    # the stream fast-forwarded to the segment start at or before t, then 3 segments of warm-up; BC: 5 warm-up updates
    assert prepared == (20 + 30 if workload == "stream" else 5)
