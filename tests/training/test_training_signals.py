"""SIGTERM/SIGINT at any moment of a run: a non-zero exit, no traceback, a resume to the same end.

A real run is started as a process ten times and signalled at ten moments spread evenly over
its wall time (start-up, training steps, the tests after each task, the outputs); see
``signal_moments.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
RUN = [
    "algorithm=hat",
    "data.num_tasks=2",
    "trainer.max_epochs=4",  # training long enough beside start-up and outputs for most moments
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[csv]",
    "trainer.figures=false",
]
MOMENTS = 10


@pytest.fixture(scope="module")
def moments(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("signals")
    out = work / "moments.json"
    process = subprocess.run(
        [sys.executable, str(HERE / "signal_moments.py"), str(out), str(work), str(MOMENTS), *RUN],
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return work, json.loads(out.read_text())


@pytest.mark.slow
def test_a_signal_at_any_moment_exits_128_plus_signal_without_traceback(moments):
    _, found = moments
    assert found["full_exit"] == 0
    signalled = [record for record in found["runs"] if record["signalled"]]
    # a run on a busy machine may end before its moment: most of them are still signalled
    assert len(signalled) >= MOMENTS // 2
    for record in signalled:
        where = f"signal {record['signal']} after {record['delay']:.2f} s: {record['stderr']!r}"
        assert record["exit"] == 128 + record["signal"], where
        assert "Traceback" not in record["stderr"], where
        # one line says what happened (a signal after the last output: the results are complete)
        said = ("interrupted", "received after the run had finished")
        assert any(words in record["stderr"] for words in said), where


@pytest.mark.slow
def test_every_signalled_run_resumes_to_the_uninterrupted_result(moments):
    work, found = moments
    expected = (work / "full" / "metrics.json").read_bytes()
    assert (work / "timed" / "metrics.json").read_bytes() == expected
    resumed = 0
    for index, record in enumerate(found["runs"]):
        folder = work / f"run_{index}"
        if not record["kept"]:  # stopped before anything was saved: nothing is left behind
            assert not folder.exists() and "run the same command again" in record["stderr"]
            continue
        if "resume_exit" in record:
            assert record["resume_exit"] == 0, record["resume_stderr"]
            assert "Traceback" not in record["resume_stderr"]
            resumed += 1
        assert (folder / "metrics.json").read_bytes() == expected, index
    assert resumed >= MOMENTS // 2  # most moments fall inside the training
