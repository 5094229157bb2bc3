"""A real headless Chromium for the console's browser tests, driven by Selenium through Debian's chromedriver.

`scripts/chromium.sh install` puts Debian's `chromium` and `chromium-driver` on the machine (one build, so the
driver always matches the browser). Selenium is pointed at both files explicitly and told to stay offline, so
Selenium Manager never tries to download a browser or a driver.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chromium.sh"
WINDOW = (1400, 1000)
PAGE_LOAD_TIMEOUT_S = 60
SCRIPT_TIMEOUT_S = 60


def _binaries() -> tuple[str, str]:
    """The browser and driver paths: CHROMIUM_BIN / CHROMEDRIVER_BIN, else what is on PATH, else installed now."""
    browser = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
    if not (browser and driver):
        subprocess.run(["bash", str(SCRIPT), "install"], check=True, timeout=900)
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        driver = shutil.which("chromedriver")
    if not (browser and driver):
        raise RuntimeError("chromium or chromedriver is missing after scripts/chromium.sh install")
    return browser, driver


def options(browser: str, download_dir: Path | None = None) -> Options:
    """Headless, no sandbox (the tests run as root in a container), a fixed window for stable screenshots."""
    opts = Options()
    opts.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--lang=en-US",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        opts.add_argument(argument)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if download_dir is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir)})
    return opts


@contextmanager
def chromium(log_file: Path | None = None) -> Iterator[webdriver.Chrome]:
    """A headless Chromium session; quit (browser and driver processes) on exit, whatever happened inside."""
    browser, driver_path = _binaries()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never reach out for a browser or driver
    service = Service(executable_path=driver_path, log_output=str(log_file) if log_file else subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=options(browser))
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        driver.set_script_timeout(SCRIPT_TIMEOUT_S)
        yield driver
    finally:
        driver.quit()
