"""The sweep report's figures against the runs' metrics.json, and ``hatcl report`` itself."""

from __future__ import annotations

import math
import re

import pytest
from report_helpers import figure_html, make_run, make_summary_run, marks

from hatcl.cli import main
from hatcl.reporting.report import report_html

STD = math.sqrt(2 * 0.1**2)


@pytest.fixture()
def sweep(tmp_path):
    root = tmp_path / "sweep"
    # hat: AA curves [0.9, 0.8] and [0.7, 0.6]; capacity 0.5 and 0.3
    make_summary_run(root / "0", algorithm="hat", seed=1, matrix=[[0.9], [0.8, 0.8]], capacity=0.5)
    make_summary_run(root / "1", algorithm="hat", seed=2, matrix=[[0.7], [0.4, 0.8]], capacity=0.3)
    make_summary_run(root / "2", algorithm="finetuning", seed=1, matrix=[[1.0], [0.5, 0.5]])
    make_summary_run(root / "3", algorithm="finetuning", seed=2, matrix=[[0.8], [0.3, 0.7]])
    return root


def test_compare_table_names_configurations_and_seeds(sweep):
    table = figure_html(report_html(sweep), "compare")
    assert 'class="sortable"' in table
    rows = re.findall(r"<tr>(.*?)</tr>", table[table.index("<tbody>") :])
    cells = [re.findall(r'<td data-sort="([^"]*)">([^<]*)</td>', row) for row in rows]
    assert [row[0][1] for row in cells] == ["hat", "finetuning"]
    assert [row[2][1] for row in cells] == ["1, 2", "1, 2"]
    assert float(cells[0][3][0]) == pytest.approx(0.7)  # AA sorts by the mean
    assert cells[0][3][1] == f"0.7000 ± {STD:.4f}"
    assert cells[1][3][1] == "0.5000 ± 0.0000"  # finetuning: (0.5 + 0.5) / 2 = (0.3 + 0.7) / 2


def test_aa_curves_have_the_mean_and_a_one_std_band(sweep):
    figure = figure_html(report_html(sweep), "aa-curves")
    hat = figure[figure.index('data-series="hat (n=2)"') :]
    hat = hat[: hat.index("</g>")]
    points = [float(p["data-value"]) for p in marks(hat, "circle", "point")]
    assert points == pytest.approx([0.8, 0.7])  # means of {0.9, 0.7} and {0.8, 0.6}
    assert f"band {0.8 - STD:.4f} to {0.8 + STD:.4f}" in hat
    assert 'class="band"' in hat and 'data-series="finetuning (n=2)"' in figure


def test_final_accuracy_per_task_is_the_mean_last_row(sweep):
    cells = marks(figure_html(report_html(sweep), "final-accuracy"), "rect", "cell")
    values = {(int(c["data-row"]), int(c["data-col"])): float(c["data-value"]) for c in cells}
    assert values == pytest.approx({(0, 0): 0.6, (0, 1): 0.8, (1, 0): 0.4, (1, 1): 0.6})


def test_capacity_per_configuration_leaves_out_runs_without_it(sweep):
    figure = figure_html(report_html(sweep), "final-capacity")
    bars = marks(figure, "rect", "bar")
    assert [b["data-group"] for b in bars] == ["hat"]
    assert float(bars[0]["data-value"]) == pytest.approx(0.4)
    assert f"hat, capacity: 0.4000 +- {STD:.4f}" in figure


def test_report_command_writes_into_the_folder_or_out(sweep, tmp_path, capsys):
    assert main(["report", str(sweep)]) == 0
    written = sweep / "report.html"
    assert written.read_text().startswith("<!DOCTYPE html>")
    assert f"report: {written}" in capsys.readouterr().out
    assert main(["report", str(sweep)]) == 0  # its own report is replaced
    out = tmp_path / "elsewhere" / "sweep.html"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    assert "hatcl sweep report" in out.read_text()


def test_report_command_never_overwrites_another_file(tmp_path, capsys):
    run = make_run(tmp_path / "run", checkpoint=False)
    mine = tmp_path / "notes.html"
    mine.write_text("<p>mine</p>")
    assert main(["report", str(run), "--out", str(mine)]) == 2
    assert "--force" in capsys.readouterr().err and mine.read_text() == "<p>mine</p>"
    assert main(["report", str(run), "--out", str(mine), "--force"]) == 0
    assert "hatcl run report" in mine.read_text()


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_report_command_errors_exit_2(tmp_path, capsys, make):
    target = tmp_path / "x"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("")
    assert main(["report", str(target)]) == 2
    assert "hatcl report:" in capsys.readouterr().err
    assert not (tmp_path / "x" / "report.html").exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_multirun_callback_writes_the_sweep_report_unless_disabled(sweep, tmp_path, enabled):
    from omegaconf import OmegaConf

    from hatcl.cli_sweep_report import SweepReport

    outside = make_summary_run(tmp_path / "elsewhere", algorithm="lwf", seed=1, matrix=[[0.5]])
    callback = SweepReport()
    callback.folders = [sweep / "0", outside]  # as noted by on_job_end
    config = OmegaConf.create(
        {"trainer": {"report": enabled}, "hydra": {"sweep": {"dir": str(sweep)}}}
    )
    callback.on_multirun_end(config)
    written = sweep / "report.html"
    assert written.exists() == enabled
    if enabled:  # the sweep folder's runs and the job folder outside it
        page = written.read_text()
        assert "5 runs in 3 configurations" in page and str(outside) in page


def test_task_aware_columns_of_class_incremental_runs_get_their_headers(sweep):
    import json

    metrics_file = sweep / "2" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["average_accuracy_task_aware"] = 0.9
    metrics_file.write_text(json.dumps(metrics))
    table = figure_html(report_html(sweep), "compare")
    headers = re.findall(r"<th>([^<]*)</th>", table)
    first_row = re.search(r"<tbody><tr>(.*?)</tr>", table).group(1)
    assert len(re.findall(r"<td ", first_row)) == len(headers)
    assert "AA TAw" in headers and "0.9000" in table


def test_a_sweep_with_its_own_output_dirs_gets_a_report_of_those_runs(tmp_path, capsys):
    """Job folders set by ``output_dir`` outside the sweep folder are the ones reported."""
    sweep, runs = tmp_path / "sweep", tmp_path / "runs"
    args = [
        "run", "-m", "algorithm=hat,finetuning", f"output_dir={runs}/${{algorithm.name}}",
        f"hydra.sweep.dir={sweep}", "data.num_tasks=1", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "trainer.num_threads=1", "trainer.loggers=[]",
        "trainer.figures=false", "trainer.checkpoints=false",
    ]  # fmt: skip
    assert main(args) == 0
    page = (sweep / "report.html").read_text()
    assert "2 runs in 2 configurations" in page
    assert str(runs / "hat") in page and str(runs / "finetuning") in page
