"""The forms page served by Voilà, used in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from libsrv.catalog import Catalog
from tests.helpers import ChildOutput, client_for, end_drained, free_port, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed: `python3 kit.py browser` installs it "
    "(as root with apt-get, as CI does), or install it with your package manager")]



def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_voila_forms_page_loans_a_book(start_server, catalog_file: Path,
                                           tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    server = start_server(catalog_file, workers=2, options={"lang": "es"})
    port = free_port()
    env = dict(os.environ, JUPYTER_PLATFORM_DIRS="1")
    voila = subprocess.Popen(
        [sys.executable, "-m", "libsrv", "forms", "--endpoint", server.endpoint,
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, cwd=tmp_path)
    output = ChildOutput(voila)  # drained, so a chatty Voilà never blocks on a full pipe
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: answers(url), timeout=90, message="Voilà to serve the page")
        with sync_playwright() as play:
            browser = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # Voilà asks a CDN for its icon font, which an offline classroom cannot reach;
            # anything else failing (our page, its widgets) is an error
            page.on("requestfailed", lambda r: None if "cdn.jsdelivr.net" in r.url
                    else errors.append(f"{r.url} failed"))
            page.goto(url, timeout=120_000)
            page.get_by_role("tab", name="Préstamo ISBN").click(timeout=120_000)
            page.locator("input[placeholder=ISBN]:visible").fill("9788437604947")
            page.locator("input[placeholder=Prestatario]:visible").fill("<b>Guillermo</b>")
            page.locator("button:visible", has_text="Solicitar préstamo").click()
            card = page.locator(".libsrv-card:visible")
            card.wait_for(timeout=30_000)
            page.get_by_text("Préstamo exitoso").wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "forms.png"))
            text = card.inner_text()
            assert "Don Quijote de la Mancha" in text and "prestado" in text
            assert "<b>Guillermo</b>" in text  # shown as text, not as markup
            assert page.locator(".libsrv-card b", has_text="Guillermo").count() == 0
            # the catalog tab follows the live feed: a loan made by another client shows up
            # without a click
            page.get_by_role("tab", name="Catálogo").click(timeout=30_000)
            page.get_by_text("en vivo").first.wait_for(timeout=60_000)
            with client_for(server) as other:
                assert other.loan_isbn("9788497592208", "Ana Live").success
            page.get_by_text("Ana Live").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "catalog-live.png"), full_page=True)
            if os.environ.get("LIBSRV_SCREENSHOTS"):  # to look at what a student sees
                for shot in ("forms.png", "catalog-live.png"):
                    shutil.copy(tmp_path / shot, Path(os.environ["LIBSRV_SCREENSHOTS"]) / shot)
            browser.close()
        assert not errors, errors
    finally:
        said = end_drained(voila, output)
    assert server.stop() == 0
    for noise in ("Traceback", "websocket_ping_timeout", "Warning"):  # a quiet terminal
        assert noise not in said, said
    assert Catalog.from_bytes(catalog_file.read_bytes()).get("9788437604947")["prestatario"] \
        == "<b>Guillermo</b>"
