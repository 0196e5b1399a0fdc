"""`automix-jax solve`."""

import json

from test_pomdp_file import TIGER  # the tiger problem written out by hand

from automix_jax.cli import main


def test_solve_json(tmp_path, capsys):
    path = tmp_path / "tiger.pomdp"
    path.write_text(TIGER)
    code = main(
        ["solve", str(path), "--json", "--belief-points", "16", "--tolerance", "1e-6"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert abs(report["value"] - 19.3714) < 1e-2
    assert report["alpha_vectors"] >= 2
    assert report["seconds"] >= 0
    assert report["start"] == "uniform"


def test_solve_text(tmp_path, capsys):
    path = tmp_path / "tiger.pomdp"
    path.write_text(TIGER)
    assert main(["solve", str(path), "--belief-points", "8"]) == 0
    out = capsys.readouterr().out
    assert "value at uniform start belief: 19.3" in out
    assert "alpha vectors:" in out and "solve time:" in out


def test_solve_errors_print_one_line(tmp_path, capsys):
    path = tmp_path / "bad.pomdp"
    path.write_text(
        "discount: 0.95\nstates: 2\nactions: 1\nobservations: 1\nT: 0 : 5\n"
    )
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("automix-jax solve: error:") and "bad.pomdp:5:" in err
    assert main(["solve", str(path), "--belief-points", "0"]) == 2
    assert "--belief-points must be at least 1" in capsys.readouterr().err
