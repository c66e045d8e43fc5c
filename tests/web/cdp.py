"""Headless Chromium driven over the Chrome DevTools Protocol with aiohttp's websocket client.

Just enough for the dashboard's browser test: open a page, wait for it to load, evaluate
JavaScript in it (from DevTools: the page itself runs none), take a full-page screenshot.
Debian's package: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-quic", "--mute-audio", "--hide-scrollbars",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is not installed: the browser test needs Debian's package "
                "(`apt-get install -y chromium`); it fails rather than skips", pytrace=False)


class Chromium:
    """One headless Chromium process (ours, ended by its pid) and one page in it."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session_id: str | None = None
        self._ids = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._waiters: list[tuple[str, asyncio.Future]] = []
        self.log: list[dict] = []  # Log.entryAdded and Runtime.exceptionThrown from the page
        self._reader: asyncio.Task | None = None
        self._stderr = None

    async def __aenter__(self) -> Chromium:
        profile = self.workdir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.workdir / "chromium.log", "wb")
        self.proc = await asyncio.create_subprocess_exec(
            chromium_path(), *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
        port_file = profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.returncode is not None or loop.time() > deadline:
                log = (self.workdir / "chromium.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Chromium did not open its DevTools port; its log ends with:\n{log}", pytrace=False)
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        self.session_id = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            await self.page(domain)
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if self.ws is not None and not self.ws.closed:
                try:
                    await asyncio.wait_for(self.send("Browser.close"), 5)
                except Exception:  # noqa: BLE001 - it may close the socket before answering
                    pass
        finally:
            if self._reader is not None:
                self._reader.cancel()
                try:
                    await self._reader
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
            if self.ws is not None:
                await self.ws.close()
            if self.http is not None:
                await self.http.close()
            if self.proc is not None:
                try:
                    await asyncio.wait_for(self.proc.wait(), 10)
                except asyncio.TimeoutError:
                    self.proc.kill()  # only our own process, by its handle
                    await self.proc.wait()
            if self._stderr is not None:
                self._stderr.close()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
                continue
            method = data.get("method", "")
            if method in ("Log.entryAdded", "Runtime.exceptionThrown"):
                self.log.append(data.get("params", {}))
            for name, fut in list(self._waiters):
                if name == method and not fut.done():
                    fut.set_result(data.get("params", {}))
                    self._waiters.remove((name, fut))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the DevTools connection closed"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._ids += 1
        msg = {"id": self._ids, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._ids] = fut
        await self.ws.send_str(json.dumps(msg))
        return await asyncio.wait_for(fut, 30)

    async def page(self, method: str, params: dict | None = None) -> dict:
        return await self.send(method, params, self.session_id)

    def _expect(self, event: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((event, fut))
        return fut

    async def goto(self, url: str) -> None:
        loaded = self._expect("Page.loadEventFired")
        result = await self.page("Page.navigate", {"url": url})
        assert not result.get("errorText"), result
        await asyncio.wait_for(loaded, 30)

    async def eval(self, expression: str):
        r = await self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    async def eval_and_wait_load(self, expression: str) -> None:
        """Run ``expression`` (a click or submit) and wait until the next document has loaded."""
        loaded = self._expect("Page.loadEventFired")
        await self.eval(expression)
        await asyncio.wait_for(loaded, 30)

    async def screenshot(self, path: Path, width: int = 1280, min_height: int = 900) -> bytes:
        """A full-page PNG at ``width`` CSS pixels."""
        await self.page("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": min_height, "deviceScaleFactor": 1, "mobile": False})
        metrics = await self.page("Page.getLayoutMetrics")
        height = int(min(6000, max(min_height, metrics["cssContentSize"]["height"])))
        await self.page("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        shot = await self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        return data
