"""The HTML report in headless Chromium (Debian's package, driven by Playwright): the claim matrix
renders with every claim, every evidence and artifact link resolves, and a screenshot of the page
is kept in the report's evidence folder."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomtrust.comply.runner import ComplyRun
from roomtrust.comply.verdicts import VERDICTS

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def served(strong_run: ComplyRun) -> Iterator[str]:
    """The report folder over HTTP on 127.0.0.1, as an auditor's browser would fetch it."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(strong_run.report.parent)
    )
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium missing (apt-get install chromium)"
)
def test_the_matrix_renders_and_every_evidence_link_resolves(
    strong_run: ComplyRun, served: str
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            page.goto(served + "index.html")
            rows = page.locator("#claim-matrix tbody tr.claim")
            assert rows.count() == len(strong_run.verdicts)
            shown = {
                rows.nth(i).get_attribute("data-claim"): rows.nth(i)
                .locator("td.verdict")
                .inner_text()
                for i in range(rows.count())
            }
            assert shown == {v.id: v.verdict for v in strong_run.verdicts}
            assert set(shown.values()) <= set(VERDICTS)
            links = page.locator("a.evidence-link, a.artifact")
            hrefs = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
            assert any(h.endswith("tls-probe.json") for h in hrefs), "no probe evidence linked"
            for href in hrefs:
                response = page.request.get(served + href)
                assert response.ok, f"{href}: {response.status}"
            screenshot = strong_run.report.parent / "evidence" / "report-screenshot.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 0
