"""Both reports rendered by headless Chromium: every figure in the DOM, no request leaving the
file, no console error; screenshots in the test's temporary folder.

The runs are real: an FG-AdaHAT run and a 2-algorithm x 2-seed sweep, whose reports are written
by ``trainer.report`` (the run's at its end, the sweep's at the end of the multirun).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hatcl.cli_run import run_command
from hatcl.reporting.browser import find_browser, render

TINY = [
    "data.num_tasks=3",
    "data.train_subset=300",
    "data.test_subset=300",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.figures=false",
    "trainer.loggers=[]",
]
RUN_FIGURES = {
    "accuracy", "aa", "forgetting", "mask-usage", "capacity", "masks", "overlap", "rates",
    "curves", "timing",
}  # fmt: skip
SWEEP_FIGURES = {
    "compare", "aa-curves", "final-accuracy", "average-accuracy", "forgetting", "final-capacity",
}  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    if find_browser() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make system-deps` installs the chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium)")


def _check(rendering, expected: set[str], screenshot: Path) -> None:
    keys = [figure["key"] for figure in rendering.figures]
    assert len(keys) >= 5 and set(keys) == expected
    for figure in rendering.figures:
        assert figure["svgs"] + figure["tables"] >= 1, figure
    assert rendering.requests == ()
    assert rendering.errors == ()
    screenshot.write_bytes(rendering.screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_report_of_an_fgadahat_run_renders(browser, tmp_path):
    run = tmp_path / "run"
    assert run_command(["algorithm=fgadahat", *TINY, f"output_dir={run}"]) == 0
    rendering = render(run / "report.html")
    _check(rendering, RUN_FIGURES, tmp_path / "run.png")
    assert "fgadahat" in rendering.text and "masks per layer" in rendering.text


@pytest.mark.slow
def test_the_report_of_a_two_by_two_sweep_renders_and_names_every_configuration(
    browser, tmp_path
):
    sweep = tmp_path / "sweep"
    args = ["-m", "algorithm=fgadahat,hat", "seed=1,2", *TINY, f"hydra.sweep.dir={sweep}"]
    assert run_command(args) == 0
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    rendering = render(sweep / "report.html")
    _check(rendering, SWEEP_FIGURES, tmp_path / "sweep.png")
    for configuration in ("fgadahat", "hat"):
        assert f"\n{configuration}\t2\t1, 2\t" in rendering.text  # table row: name, n, seeds
    aa = sorted(float(row[3]) for row in rendering.sortable_rows)
    header = "document.querySelectorAll('table.sortable th')[3].click()"  # the AA column
    once = render(sweep / "report.html", actions=[header]).sortable_rows
    assert [float(row[3]) for row in once] == aa[::-1]  # descending
    twice = render(sweep / "report.html", actions=[header, header]).sortable_rows
    assert [float(row[3]) for row in twice] == aa


def test_the_checker_sees_requests_and_console_errors(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><figure data-figure="x"><svg></svg></figure>'
        '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom");</script>'
        "<script>undefined_function();</script></body></html>"
    )
    rendering = render(page)
    assert [f["key"] for f in rendering.figures] == ["x"]
    assert rendering.requests == ("http://127.0.0.1:9/x.png",)
    assert "boom" in rendering.errors
    assert any("undefined_function" in error for error in rendering.errors)
