"""Just enough of the Chrome DevTools Protocol to drive Debian's headless chromium from a test."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator

from retainwise.local.stack import stop_group
from tests.helpers import wait_for

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
        try:
            return wait_for(lambda: (text := self.text()) if needle in text else None, timeout,
                            repr(needle), poll=0.2)
        except AssertionError:
            raise AssertionError(f"{needle!r} never appeared; the page shows:\n"
                                 f"{self.text()[-1500:]}") from None


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
            stop_group(process.pid)
            process.wait(10)


def _first_page(port: int, timeout: float = 20) -> dict[str, Any]:
    def pages() -> list[dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                return [t for t in json.load(r) if t["type"] == "page"]
        except OSError:
            return []

    return wait_for(pages, timeout, "chromium to open its DevTools port", poll=0.1)[0]
