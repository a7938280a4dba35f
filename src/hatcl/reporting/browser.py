"""Render an HTML file in headless Chromium and report what the page did.

Speaks the Chrome DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4 of
the browser; messages are JSON ending in a NUL byte), so no extra package and no port are
needed. Used by the report tests (every figure in the DOM, no request leaving the file, no
console error) and by ``benchmarks/report_screenshots.py``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-pipe",
)  # fmt: skip
#: Evaluated in the page: the figures, the SVG pictures in each, the table rows' first cells.
PROBE = """JSON.stringify({
  figures: Array.from(document.querySelectorAll('figure[data-figure]')).map(function (f) {
    return {key: f.dataset.figure, svgs: f.querySelectorAll('svg').length,
            tables: f.querySelectorAll('table').length};
  }),
  text: document.body.innerText,
  sortable: Array.from(document.querySelectorAll('table.sortable tbody tr')).map(function (r) {
    return Array.from(r.cells).map(function (c) { return c.dataset.sort; });
  })
})"""


@dataclass(frozen=True)
class Rendering:
    """What the page showed and did: its figures, requests, console errors and a screenshot."""

    figures: tuple[dict[str, Any], ...]
    text: str
    sortable_rows: tuple[tuple[str, ...], ...]
    requests: tuple[str, ...]
    errors: tuple[str, ...]
    screenshot: bytes


def find_browser() -> str | None:
    """The path of a Chromium executable, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def render(
    path: str | Path, *, width: int = 1280, timeout: float = 60.0, actions: Sequence[str] = ()
) -> Rendering:
    """Open ``path`` in headless Chromium; return what it rendered (a full-page screenshot).

    ``actions`` are JavaScript expressions run in the page, in order, once it has loaded (e.g. a
    click on a table header) and before its state is read.

    Raises:
        FileNotFoundError: no Chromium executable or no such file.
        TimeoutError: the browser did not answer within ``timeout`` seconds.
    """
    page = Path(path).absolute()
    if not page.is_file():
        raise FileNotFoundError(f"{str(page)!r} is not a file")
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(BROWSERS)})")
    with tempfile.TemporaryDirectory(prefix="hatcl-chromium-") as profile:
        with _Pipe(browser, profile, timeout=timeout) as cdp:
            return _render(cdp, page.as_uri(), width=width, actions=actions)


def _render(cdp: _Pipe, url: str, *, width: int, actions: Sequence[str]) -> Rendering:
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})
    cdp.session = session["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        cdp.call(f"{domain}.enable")
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
    cdp.call("Emulation.setDeviceMetricsOverride", metrics)
    cdp.call("Page.navigate", {"url": url})
    cdp.wait_for("Page.loadEventFired")
    for action in actions:
        cdp.call("Runtime.evaluate", {"expression": action})
    probe = cdp.call("Runtime.evaluate", {"expression": PROBE, "returnByValue": True})
    found = json.loads(probe["result"]["value"])
    size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = cdp.call(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    cdp.session = None
    return Rendering(
        figures=tuple(found["figures"]),
        text=found["text"],
        sortable_rows=tuple(tuple(row) for row in found["sortable"]),
        requests=tuple(r for r in cdp.requests if r != url),
        errors=tuple(cdp.errors),
        screenshot=base64.b64decode(shot["data"]),
    )


class _Pipe:
    """A Chromium process and its DevTools pipe; collects requests and console errors."""

    def __init__(self, browser: str, profile: str, *, timeout: float) -> None:
        self.command = [browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.timeout, self.session, self.counter = timeout, None, 0
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.buffer = b""

    def __enter__(self) -> _Pipe:
        to_browser, self.write_end = os.pipe()
        self.read_end, from_browser = os.pipe()

        def wire() -> None:  # in the child: the protocol's fds 3 (commands) and 4 (answers)
            commands, answers = os.dup(to_browser), os.dup(from_browser)  # 3 or 4 may be taken
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        self.process = subprocess.Popen(
            self.command, preexec_fn=wire, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.session = None
            self.send("Browser.close")
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.write_end)
        os.close(self.read_end)

    def send(self, method: str, params: dict | None = None) -> int:
        self.counter += 1
        message: dict[str, Any] = {"id": self.counter, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self.write_end, json.dumps(message).encode() + b"\0")
        return self.counter

    def call(self, method: str, params: dict | None = None) -> dict[str, Any]:
        """Send a command and wait for its answer (events seen meanwhile are recorded)."""
        number = self.send(method, params)
        while True:
            message = self._next()
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, event: str) -> dict[str, Any]:
        """Wait for the event ``event`` (recording the others)."""
        while True:
            message = self._next()
            if message.get("method") == event:
                return message.get("params", {})

    def _next(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.read_end], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"Chromium did not answer within {self.timeout} s")
            chunk = os.read(self.read_end, 1 << 20)
            if not chunk:
                raise TimeoutError("Chromium closed its DevTools pipe")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        message = json.loads(raw)
        self._record(message.get("method"), message.get("params", {}))
        return message

    def _record(self, method: str | None, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
