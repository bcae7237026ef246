"""The board pack and the register opened in a real headless browser (Debian's chromium).

Chromium is started with no network (every host name resolves to nothing), a hook at the top of the
page writes any script or resource error into the DOM, and Chromium's own log is read for console
messages (SVG or CSS the browser rejected). Without chromium the tests skip, except under CI, where
`.ci/run` installs it and its absence is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from streams.cli.main import main
from streams.report.month_html import CHARTS
from tests.streams.report.conftest import Simulated

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed (apt-get install chromium)"
)

HOOK = (
    "<script>(function(){var d=document.documentElement;"
    "function note(m){d.setAttribute('data-errors',(d.getAttribute('data-errors')||'')+m+' | ');}"
    "addEventListener('error',function(e){var t=e.target||{};"
    "note('error: '+(e.message||t.src||t.href||t.tagName||'unknown'));},true);"
    "addEventListener('unhandledrejection',function(e){note('rejection: '+e.reason);});"
    "var ce=console.error;console.error=function(){note('console.error: '+[].join.call(arguments,' '));"
    "return ce.apply(console,arguments);};})();</script>"
)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "chromium is missing: .ci/run installs Debian's package"
    with tempfile.TemporaryDirectory(prefix="gatewatch-chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # tests run as root in CI containers
                "--disable-gpu",
                "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may be fetched at view time
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def console_messages(stderr: str) -> list[str]:
    """Console lines Chromium logs with --enable-logging=stderr (page errors and warnings alike)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def pages(simulated: Simulated, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("browser")
    history = ["--history", str(simulated.directory), "--out", str(out), "--quiet"]
    assert 0 == main(["report", "month", "2026-11", *history])
    assert 0 == main(["report", "register", "2026Q4", *history])
    hooked = {}
    for name in ("board-pack-2026-11.html", "register-2026Q4.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert text.count("<head>") == 1
        path = out / f"hooked-{name}"
        path.write_text(text.replace("<head>", "<head>" + HOOK, 1), encoding="utf-8")
        hooked[name] = path
    return hooked


@pytest.mark.parametrize("name", ["board-pack-2026-11.html", "register-2026Q4.html"])
def test_the_page_loads_with_no_console_or_script_error(pages: dict[str, Path], name: str) -> None:
    result = chromium("--enable-logging=stderr", "--v=0", "--dump-dom", pages[name].as_uri())
    assert 0 == result.returncode, result.stderr[-2000:]
    assert "</html>" in result.stdout
    assert [] == console_messages(result.stderr)
    errors = re.search(r'data-errors="([^"]*)"', result.stdout)
    assert errors is None, errors.group(1)


def test_every_chart_is_in_the_rendered_board_pack(pages: dict[str, Path]) -> None:
    result = chromium("--dump-dom", pages["board-pack-2026-11.html"].as_uri())
    drawn = re.findall(r'<figure class="chart" data-chart="([a-z-]+)"><svg\b', result.stdout)
    assert sorted(CHARTS) == sorted(drawn)


def test_a_screenshot_is_taken_and_shows_the_pack(pages: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image  # matplotlib's own dependency

    shot = tmp_path / "board-pack.png"
    result = chromium("--window-size=1200,2400", f"--screenshot={shot}", pages["board-pack-2026-11.html"].as_uri())
    assert 0 == result.returncode, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert (1200, 2400) == image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, tables and charts, not a blank page


def test_the_pack_prints_to_a_pdf_of_several_a4_pages(pages: dict[str, Path], tmp_path: Path) -> None:
    pdf = tmp_path / "board-pack.pdf"
    result = chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", pages["board-pack-2026-11.html"].as_uri())
    assert 0 == result.returncode, result.stderr[-2000:]
    data = pdf.read_bytes()
    pages_printed = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    assert 3 <= pages_printed <= 20, pages_printed
    boxes = {
        (round(float(w)), round(float(h))) for w, h in re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", data)
    }
    assert {(595, 842)} == boxes  # A4 in points, as the print stylesheet asks
