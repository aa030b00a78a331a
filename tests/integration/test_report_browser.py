"""The HTML report in a real browser (Debian's chromium, headless): a report built from the seeded
Odoo stand-in is screenshot at desk and phone widths and printed to PDF; the pictures are not
blank and the DOM the browser built holds the charts and the tables."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from bridge.reports.build import read_report, render
from tests.integration.test_report_flow import NOW, seed, week

pytestmark = pytest.mark.integration

INSTALL = "scripts/install-chromium.sh (make test-deps)"


def chromium() -> str:
    """The browser, or a failure saying how to install it: this test never skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(f"chromium is not installed: run {INSTALL}", pytrace=False)
    return found


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def not_blank(png: Path, width: int) -> None:
    image = Image.open(png).convert("L")
    assert image.width == width
    spread = ImageStat.Stat(image).stddev[0]
    dark = sum(image.histogram()[:128]) / (image.width * image.height)
    assert spread > 20, f"{png.name}: looks blank (pixel deviation {spread:.1f})"
    assert dark > 0.01, f"{png.name}: almost no ink ({dark:.3%} dark pixels)"


@pytest.fixture
def page(odoo, tmp_path, monkeypatch) -> Path:
    seeded = seed(odoo, tmp_path, monkeypatch)
    out = tmp_path / "report.html"
    out.write_text(render(read_report(seeded.cfg, week(seeded.cfg), NOW), "html"), encoding="utf-8")
    return out


def test_the_html_report_renders_with_its_charts_and_tables_in_chromium(page, tmp_path):
    dom = browse(page, tmp_path, "--dump-dom").stdout
    assert len(re.findall(r"<svg\b", dom)) == 4  # daily, hour of week, categories, automation
    assert len(re.findall(r"<path\b", dom)) > 100  # the charts drew something
    assert len(re.findall(r"<table\b", dom)) == 7
    for section in ("overview", "daily", "hour_of_week", "categories", "recurring", "teams", "agents",
                    "automation", "sla"):
        assert f'id="{section}"' in dom
    assert "Cannot log in to the portal" in dom and "<script" not in dom

    for width, height in ((1200, 2400), (390, 3000)):  # a desk, a phone
        shot = tmp_path / f"report-{width}.png"
        browse(page, tmp_path, f"--window-size={width},{height}", f"--screenshot={shot}")
        not_blank(shot, width)


def test_the_html_report_prints(page, tmp_path):
    pdf = tmp_path / "report.pdf"
    browse(page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", data)) >= 2
