"""Just enough of the Chrome DevTools Protocol to drive Debian's headless chromium from a test."""

from __future__ import annotations

import itertools
import json
import os
import signal
import shutil
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    def __init__(self, ws):
        self._ws, self._ids = ws, itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == message_id:
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} never appeared; the page shows:\n{self.text()[-1500:]}")


@contextmanager
def headless_page(port: int) -> Iterator[Page]:
    from websockets.sync.client import connect

    # chromium's helper processes may still be writing the profile as it is removed
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800",
             f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
             "--remote-allow-origins=*", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            target = _first_page(port)
            with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                yield Page(ws)
        finally:  # the browser and its renderer/zygote helpers: the whole process group
            _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(10)
            break
        except subprocess.TimeoutExpired:
            continue
    process.poll()


def _first_page(port: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            if pages:
                return pages[0]
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")
