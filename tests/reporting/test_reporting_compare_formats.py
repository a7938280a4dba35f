"""``hatcl compare``: ``--format md|csv|latex``, ``--force``, capacity, ``--figure-format``."""

from __future__ import annotations

import csv
import math

import pytest
from report_helpers import make_summary_run

from hatcl.cli import main


@pytest.fixture()
def sweep(tmp_path):
    root = tmp_path / "sweep"
    # hat: AA 0.8 and 0.6, capacity 0.5 and 0.3; finetuning: AA 0.5, no capacity
    make_summary_run(root / "0", algorithm="hat", seed=1, matrix=[[0.9], [0.8, 0.8]], capacity=0.5)
    make_summary_run(root / "1", algorithm="hat", seed=2, matrix=[[0.7], [0.4, 0.8]], capacity=0.3)
    make_summary_run(root / "2", algorithm="finetuning", seed=1, matrix=[[1.0], [0.5, 0.5]])
    return root


STD = math.sqrt(2 * 0.1**2)  # sample std of {0.8, 0.6} and of {0.5, 0.3}


def test_output_csv_writes_csv_with_means_stds_seeds_and_capacity(sweep, tmp_path):
    output = tmp_path / "t.csv"
    assert main(["compare", str(sweep), "--output", str(output)]) == 0
    rows = list(csv.DictReader(output.open(newline="")))
    assert [r["configuration"] for r in rows] == ["hat", "finetuning"]
    hat, finetuning = rows
    assert hat["n"] == "2" and hat["seeds"] == "1 2"
    assert float(hat["AA_mean"]) == pytest.approx(0.7)
    assert float(hat["AA_std"]) == pytest.approx(STD)
    assert float(hat["capacity_mean"]) == pytest.approx(0.4)
    assert float(hat["capacity_std"]) == pytest.approx(STD)
    assert finetuning["capacity_mean"] == "" and finetuning["AA_std"] == ""
    assert "|" not in output.read_text()


def test_latex_table_from_the_extension_and_from_format(sweep, tmp_path):
    output = tmp_path / "t.tex"
    assert main(["compare", str(sweep), "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("\\begin{tabular}") and "\\toprule" in text
    assert f"hat & 2 & $0.7000 \\pm {STD:.4f}$" in text
    assert "capacity" in text and f"$0.4000 \\pm {STD:.4f}$ \\\\" in text
    other = tmp_path / "table.txt"
    assert main(["compare", str(sweep), "--output", str(other), "--format", "latex"]) == 0
    assert other.read_text() == text


def test_markdown_has_a_capacity_column(sweep, tmp_path):
    output = tmp_path / "t.md"
    assert main(["compare", str(sweep), "--output", str(output)]) == 0
    lines = output.read_text().splitlines()
    assert lines[0].endswith("| FWT | capacity |")
    assert lines[2].endswith(f"| 0.4000 ± {STD:.4f} |") and lines[3].endswith("| n/a |")


def test_an_existing_file_is_never_overwritten_without_force(sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "comparison.md"
    mine.write_text("my own notes\n")
    assert main(["compare", str(sweep)]) == 2  # the default ./comparison.md
    assert "--force" in capsys.readouterr().err
    assert mine.read_text() == "my own notes\n" and not (tmp_path / "comparison_aa.png").exists()
    assert main(["compare", str(sweep), "--force"]) == 0
    assert mine.read_text().startswith("| configuration |")


def test_an_existing_figure_is_not_overwritten_either(sweep, tmp_path):
    figure = tmp_path / "t_aa.png"
    figure.write_bytes(b"mine")
    assert main(["compare", str(sweep), "--output", str(tmp_path / "t.md")]) == 2
    assert figure.read_bytes() == b"mine" and not (tmp_path / "t.md").exists()


@pytest.mark.parametrize(
    ("figure_format", "magic"), [("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")]
)
def test_figure_formats(sweep, tmp_path, figure_format, magic):
    output = tmp_path / "t.md"
    args = ["compare", str(sweep), "--output", str(output), "--figure-format", figure_format]
    assert main(args) == 0
    assert (tmp_path / f"t_aa.{figure_format}").read_bytes().startswith(magic)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "t.xlsx"], "cannot tell the table format"),
        (["--output", "t.md", "--format", "html"], "unknown --format 'html'"),
        (["--output", "t.md", "--figure-format", "jpg"], "unknown --figure-format 'jpg'"),
    ],
)
def test_format_errors_exit_2_before_writing(sweep, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(sweep), *args]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
