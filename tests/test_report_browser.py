"""Open the generated report in real headless Chromium: no console errors, no failed loads, no network, a screenshot.

Chromium is driven over the DevTools protocol with a tiny WebSocket client (stdlib only): the test enables the
Runtime, Log, Page and Network domains before navigating, so it sees every console message, uncaught exception,
browser log entry (e.g. "Failed to load resource") and request the page makes. It fails on any error-level entry, on
any request that is not file: or data:, and on any <img> that did not decode; then it saves a full-page screenshot
(Page.captureScreenshot with captureBeyondViewport; `--screenshot` would only capture the window). Skipped only when
the `chromium` binary is not installed (Debian: `apt-get install -y chromium`).
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_fixtures import write_bench_json, write_sr_run, write_style_run, write_trend

from reports.build import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-allow-origins=*"]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")]


class WebSocket:
    """The client half of RFC 6455 that the DevTools protocol needs: text frames, masking, ping, close."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        head, self.buffer = response.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """Numbered commands and a log of every event received while waiting for their answers."""

    def __init__(self, ws: WebSocket):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.ws.sock.settimeout(timeout)
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == event:
                    return
        raise TimeoutError(f"no {event} within {timeout} s")


def _devtools_port(user_data: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    marker = user_data / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before opening DevTools")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def _page_target(port: int) -> str:
    # the browser's first page target (about:blank), via the local DevTools HTTP endpoint
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/json/list")
        targets = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    pages = [t for t in targets if t.get("type") == "page"]
    assert pages, f"no page target in {targets}"
    return pages[0]["webSocketDebuggerUrl"]


FOLD_CHECK = """JSON.stringify((() => {
  const el = document.getElementById(%s);
  if (!el) return {found: false};
  const details = el.closest('details');
  const table = el.tagName === 'TABLE' ? el : el.querySelector('table, img');
  return {found: true, open: details ? details.open : null, top: el.getBoundingClientRect().top,
          shown: table ? table.getBoundingClientRect().height : 0};
})())"""


def open_in_chromium(html: Path, screenshot: Path, workdir: Path, width: int = 1400,
                     fragments: tuple[str, ...] = ()) -> dict:
    """Load `html` in headless Chromium; return the errors, requests and image checks; write a full-page PNG.

    The page height is measured as loaded (every <details> closed). Then each of `fragments` is navigated to
    (`report.html#<id>`) and the result records whether the <details> around that id opened and how tall the
    table (or image) inside it is now."""
    user_data = workdir / f"chromium-profile-{width}"  # a fresh profile every time
    user_data.mkdir()
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--window-size={width},1000", f"--user-data-dir={user_data}",
                             "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = _devtools_port(user_data, proc)
        ws = WebSocket(_page_target(port))
        cdp = DevTools(ws)
        for domain in ("Runtime", "Log", "Page", "Network"):
            cdp.call(f"{domain}.enable")
        cdp.call("Page.navigate", url=html.resolve().as_uri())
        cdp.wait_for("Page.loadEventFired", timeout=60)
        time.sleep(0.5)
        cdp.call("Runtime.evaluate", expression="1")  # drain events that arrived after load
        broken = cdp.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify([...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.getAttribute('src')))"))["result"]["value"]
        n_images = cdp.call("Runtime.evaluate", expression="document.images.length")["result"]["value"]
        title = cdp.call("Runtime.evaluate", expression="document.title")["result"]["value"]
        # grid cells whose right edge lies beyond the visible width (cut off without scrolling)
        overflow = cdp.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify([...document.querySelectorAll('.grid figure')].filter(f => "
            "f.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)"
            ".map(f => f.textContent.trim().slice(0, 40)))"))["result"]["value"]
        viewport = cdp.call("Runtime.evaluate", expression="document.documentElement.clientWidth")["result"]["value"]
        metrics = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
        n_open = cdp.call("Runtime.evaluate", expression="document.querySelectorAll('details[open]').length")[
            "result"]["value"]
        tops = json.loads(cdp.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify(Object.fromEntries(['section-verdicts', 'headline-table'].map(id => "
            "[id, document.getElementById(id) ? document.getElementById(id).getBoundingClientRect().top : null])))"
        ))["result"]["value"])
        shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], 16000),
                              "scale": 1})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        folds = {}
        for fragment in fragments:
            cdp.call("Page.navigate", url=html.resolve().as_uri() + "#" + fragment)
            time.sleep(0.2)
            folds[fragment] = json.loads(cdp.call("Runtime.evaluate", returnByValue=True,
                                                  expression=FOLD_CHECK % json.dumps(fragment))["result"]["value"])
        ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    errors = []
    for ev in cdp.events:
        method, p = ev["method"], ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            errors.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
        elif method == "Runtime.exceptionThrown":
            errors.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            errors.append(f"log {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            errors.append(f"load failed: {p.get('errorText')}")
    requests = [ev["params"]["request"]["url"] for ev in cdp.events if ev["method"] == "Network.requestWillBeSent"]
    return {"errors": errors, "requests": requests, "broken_images": json.loads(broken), "n_images": n_images,
            "title": title, "height": metrics["height"], "grid_overflow": json.loads(overflow),
            "viewport_width": viewport, "n_open": n_open, "tops": tops, "folds": folds}


MAX_HEIGHT_PX = 12_000  # the whole report at 1280 px, every <details> closed


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """Five run folders (four with results: SR quick x4, SR paper x4 with a failed stage, SR x8 under the paper's
    protocol, style with a trend) and one that never ran."""
    root = tmp_path_factory.mktemp("browser-runs")
    style = write_style_run(root / "style_quick", sizes=("256", "512"))
    write_trend(style, [(250, 6.0), (500, 9.0), (1000, None)])
    runs = [write_sr_run(root / "sr_quick", datasets={"Set5": 5, "Set14": 14}),
            write_sr_run(root / "sr_paper", profile="paper", device="cuda", seed=3, corpus=("coco_train2014", 10000),
                         failed_stage="train_feat_x4"),
            write_sr_run(root / "sr_x8", scales=(8,), datasets={"Set5": 5, "Set14": 14}, eval_protocol="johnson2016",
                         seed=4),
            style,
            root / "never_ran"]
    bench = write_bench_json(root / "bench" / "cpu.json")
    return build_report(runs, [bench], root / "report")


def test_report_opens_in_chromium_without_errors(report: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    result = open_in_chromium(report, screenshot, tmp_path)
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "report.png")
    assert result["errors"] == [], result["errors"]
    assert result["title"].startswith("Perceptual losses")
    offsite = [u for u in result["requests"] if not u.startswith(("file:", "data:"))]
    assert offsite == [], f"the page asked the network for {offsite}"
    assert result["n_images"] > 20, "the grids and figures should put many images on the page"
    assert result["broken_images"] == [], f"images that did not load: {result['broken_images']}"
    assert screenshot.stat().st_size > 50_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["height"] > 2000, "a full report is several screens long"


def test_image_grids_fit_a_1280_px_window(report: Path, tmp_path: Path) -> None:
    """Every cell of the SR and style grids, ground truth included, lies inside a 1280 px wide window."""
    result = open_in_chromium(report, tmp_path / "narrow.png", tmp_path, width=1280)
    assert 1200 <= result["viewport_width"] <= 1280, result["viewport_width"]
    assert result["grid_overflow"] == [], f"cut off at 1280 px: {result['grid_overflow']}"


def test_broken_image_is_reported_by_the_browser_check(report: Path, tmp_path: Path) -> None:
    """The check above can fail: delete one crop and the browser must report the failed load."""
    copy = tmp_path / "copy"
    shutil.copytree(report.parent, copy)
    victim = min((copy / "assets").glob("*_bicubic.png"))
    victim.unlink()
    result = open_in_chromium(copy / "report.html", tmp_path / "broken.png", tmp_path)
    assert result["broken_images"], "a deleted image should not decode"
    assert any("load" in e.lower() or "ERR_FILE_NOT_FOUND" in e for e in result["errors"]), result["errors"]


def test_report_fits_its_height_and_opens_every_fold(report: Path, tmp_path: Path) -> None:
    """At 1280 px with every <details> closed the page is at most 12,000 px tall and its first screen holds the
    section verdicts and the start of the headline table; following a link to a folded claim, per-image table,
    image grid or environment opens its <details> and shows the table (or image) inside."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(report.read_text(encoding="utf-8"), "html.parser")
    fragments = tuple(el["id"] for details in soup.find_all("details") for el in details.find_all(id=True)
                      if el.name in ("div", "table", "figure"))
    assert any(f.startswith("claim-") for f in fragments) and any(f.endswith("-per-image") for f in fragments)
    assert any(f.startswith("sr-grids-") for f in fragments)
    result = open_in_chromium(report, tmp_path / "fit.png", tmp_path, width=1280, fragments=fragments)
    assert result["n_open"] == 0, "every <details> starts closed"
    assert result["height"] <= MAX_HEIGHT_PX, result["height"]
    assert 0 < result["tops"]["section-verdicts"] < 1000 and result["tops"]["headline-table"] < 1000, result["tops"]
    assert result["errors"] == [], result["errors"]
    holds_table = {f for f in fragments if (el := soup.find(id=f)).name == "table" or el.find(["table", "img"])}
    assert len(holds_table) >= len(fragments) - 1  # the run that never ran has no stages or run.json to show
    for fragment, fold in result["folds"].items():
        assert fold["found"] and fold["open"] is True, (fragment, fold)
        if fragment in holds_table:
            assert fold["shown"] > 0, f"#{fragment} opened but shows no table: {fold}"
    # every claim's link in the summary table points at a fold that exists
    links = [a["href"][1:] for a in soup.find("table", id="claims-summary").find_all("a")]
    assert links and set(links) <= set(fragments), set(links) - set(fragments)
