"""Debian's headless Chromium driven over the DevTools protocol on a pipe (no driver, no
extra package): Chromium reads commands from fd 3 and writes answers and events to fd 4,
each a JSON text ended by a NUL byte.

    with Chromium.start(tmp_path) as browser:
        browser.open(url)
        browser.type_into("#email", "ada@example.com")
        browser.click("button[type=submit]")          # waits for the next page to load
        browser.screenshot(path)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TIMEOUT = 20.0


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, proc: subprocess.Popen[bytes], commands: int, answers: int) -> None:
        self._proc = proc
        self._out = os.fdopen(commands, "wb", buffering=0)
        self._in = os.fdopen(answers, "rb", buffering=0)
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._session = ""

    @classmethod
    @contextmanager
    def start(cls, profile: Path) -> Iterator[Chromium]:
        binary = chromium_path()
        assert binary, "chromium is not installed"
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        args = [
            "--headless",
            "--no-sandbox",  # tests run as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--window-size=900,1000",
            "about:blank",
        ]
        # A small trampoline moves the pipe ends to fds 3 and 4, where Chromium wants them.
        trampoline = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
            "os.execv(sys.argv[3], sys.argv[3:])"
        )
        log = (profile / "chromium.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(to_chrome_r), str(from_chrome_w), binary, *args],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        browser = cls(proc, to_chrome_w, from_chrome_r)
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            attached = browser.call("Target.attachToTarget", targetId=target, flatten=True)
            browser._session = attached["sessionId"]
            browser.call("Page.enable")
            yield browser
        finally:
            try:
                browser.call("Browser.close", session=False)
            except Exception:
                proc.kill()
            proc.wait(timeout=TIMEOUT)
            log.close()

    # -- protocol -------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while chunk := self._in.read(65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self._events.append(message)
                self._cond.notify_all()

    def call(self, method: str, *, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; AssertionError on an error answer."""
        with self._cond:
            self._next_id += 1
            number = self._next_id
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session and self._session:
            message["sessionId"] = self._session
        self._out.write(json.dumps(message).encode() + b"\0")
        with self._cond:
            assert self._cond.wait_for(lambda: number in self._answers, TIMEOUT), method
            answer = self._answers.pop(number)
        assert "error" not in answer, (method, answer["error"])
        return answer.get("result", {})

    def _wait_event(self, method: str, since: int) -> None:
        def seen() -> bool:
            return any(e["method"] == method for e in self._events[since:])

        with self._cond:
            assert self._cond.wait_for(seen, TIMEOUT), f"no {method}"

    # -- page actions ---------------------------------------------------------------------

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def open(self, url: str) -> None:
        since = len(self._events)
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired", since)

    def type_into(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element; waits for the page it loads."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        since = len(self._events)
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )
        self._wait_event("Page.loadEventFired", since)

    def url(self) -> str:
        return self.evaluate("location.href")

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": 900, "height": size["height"], "scale": 1}
        data = self.call(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


def wait_until(condition: Any, timeout: float = TIMEOUT) -> Any:
    end = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)
    return value
