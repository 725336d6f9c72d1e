"""A real headless browser for page tests: Debian's ``chromium`` (or chromium-browser / google-chrome), in real
time (not ``--virtual-time-budget``, whose clock would make the page's rates and latencies fiction).

The page reports its own state to the view server (``GET /state``), so tests need nothing from the browser but
that it runs; :meth:`Chromium.screenshot` asks it for a PNG over the DevTools protocol (the ``websockets`` client).

Regenerate docs/images/view.png beside a running ``serve --demo`` and ``view``::

    python -m tests.browser http://127.0.0.1:8080/ docs/images/view.png
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The first Chromium-family browser on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """``chromium --headless=new`` showing ``url`` until :meth:`close` (a private profile, DevTools on a free port)."""

    def __init__(self, url: str, size: tuple[int, int] = (1280, 800), binary: str | None = None):
        binary = binary or find_chromium()
        self.size = size
        assert binary, "no Chromium found"
        self.profile = tempfile.TemporaryDirectory(prefix="hs-chromium-")
        cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
               "--no-first-run", f"--user-data-dir={self.profile.name}", "--remote-debugging-port=0",
               f"--window-size={size[0]},{size[1]}", url]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _devtools_port(self, timeout: float = 20) -> int:
        marker = Path(self.profile.name) / "DevToolsActivePort"
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise TimeoutError("Chromium did not open its DevTools port")

    def _call(self, *commands: tuple[str, dict]) -> dict:
        """DevTools commands ``(method, params)`` on the page's target, in one session; the last one's result."""
        from websockets.sync.client import connect

        port = self._devtools_port()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5).read())
        page = next(t for t in targets if t.get("type") == "page")
        result: dict = {}
        with connect(page["webSocketDebuggerUrl"], max_size=64 << 20, open_timeout=10) as ws:
            for i, (method, params) in enumerate(commands, 1):
                ws.send(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("id") == i:
                        break
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result = reply["result"]
        return result

    def screenshot(self, path: str | Path, settle_s: float = 1.0) -> Path:
        """The page as it is now (at the window's size: a headless window's viewport is smaller), as a PNG file."""
        w, h = self.size
        metrics = {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False}
        settle = {"expression": f"new Promise(r => setTimeout(r, {int(settle_s * 1000)}))", "awaitPromise": True}
        shot = self._call(("Emulation.setDeviceMetricsOverride", metrics), ("Runtime.evaluate", settle),
                          ("Page.captureScreenshot", {"format": "png"}))  # fmt: skip
        data = base64.b64decode(shot["data"])
        path = Path(path)
        path.write_bytes(data)
        return path

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def page_state(view_url: str) -> dict | None:
    """The state the first connected page reported to the view server (its ``window.handstreamView``), or None."""
    try:
        d = json.loads(urllib.request.urlopen(view_url.rstrip("/") + "/state", timeout=5).read())
    except OSError:
        return None
    pages = [p for p in d["pages"] if p["state"]]
    return pages[0]["state"] if pages else None


def wait_for(view_url: str, predicate, timeout: float, what: str) -> dict:
    """Poll :func:`page_state` until ``predicate(state)``; the state. Raises AssertionError with the last one."""
    t_end = time.monotonic() + timeout
    state = None
    while time.monotonic() < t_end:
        state = page_state(view_url)
        if state is not None and predicate(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"the page did not reach {what} in {timeout:g} s; its state: {state}")


if __name__ == "__main__":  # python -m tests.browser URL OUT.png [seconds]
    url, out = sys.argv[1], sys.argv[2]
    with Chromium(url) as browser:
        wait_for(url, lambda s: s["framesWithHands"] > 30, 60, "hands drawn")
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 3.0)  # the rates and latencies settle
        wait_for(url, lambda s: s["handsDrawn"] == 2 and s["jointsDrawn"] >= 40, 60, "both hands drawn")
        print(browser.screenshot(out, settle_s=0.05))
