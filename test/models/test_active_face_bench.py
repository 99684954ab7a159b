"""opendr-bench active-face on a small grid: the Table-1 layout, counts and figures in range."""
import json

import pytest

pytest.importorskip("opendr_perception.sim.face_world")
from opendr_perception.bench import cli  # noqa: E402


def test_active_face_benchmark_runs_a_small_grid(tmp_path, capsys):
    out = tmp_path / "figures.json"
    assert cli.main(["--json", str(out), "active-face", "--photos", "astronaut", "--ranges", "0,10,55",
                     "--grid", "25", "--steps", "2", "--quiet"]) == 0
    figures = json.loads(out.read_text())
    assert figures["identities"] == ["astronaut"] and figures["gallery_size"] == 2  # photo + frontal render
    assert figures["queries_per_range"] == {"0-10": 1, "10-55": 4}  # 0°; ±10° and ±35°
    methods = [row["method"] for row in figures["rows"]]
    assert methods == ["static", "seed rule, N=2", "ours, N=2"]
    for row in figures["rows"]:
        assert set(row["accuracy"]) == {"0-10", "10-55", "all"}
        assert all(0.0 <= v <= 100.0 for v in row["accuracy"].values())
    assert figures["rows"][0]["accuracy"]["0-10"] == 100.0  # the frontal view is recognised
    assert figures["rows"][0]["mean_moves"]["all"] == 0.0
    printed = capsys.readouterr().out
    assert "1 identity (astronaut" in printed and "static" in printed and "ours, N=2" in printed
