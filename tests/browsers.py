"""Headless Chromium for the search page's tests and ``scripts/screenshot_page.py``: Debian's
``chromium`` and ``chromedriver`` packages driven by Selenium, named explicitly, so Selenium
Manager is never asked to download a browser or a driver (there is no network)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # a container's small /dev/shm crashes tabs
    "--lang=en-US",
)


def missing() -> str | None:
    """Why no browser can be started here (a sentence for pytest.skip), or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install '.[test]')"
    return None


def chromium(profile: Path, width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium with a fresh profile in ``profile``, its window ``width`` x ``height``
    CSS pixels, logging its network requests (see ``requests``)."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, should anything call it, stays offline
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        # --window-size sets the outer window; make the page's own width exact (a phone's 390)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
    except BaseException:
        driver.quit()
        raise
    return driver


def requests(driver: Any) -> list[dict[str, Any]]:
    """The requests the browser sent since last asked (url, method, headers), from its
    performance log."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            request = message["params"]["request"]
            sent.append({"url": request["url"], "method": request["method"], "headers": request["headers"]})
    return sent
