"""The web page of `python -m src.serve`, in a real headless browser: Debian's Chromium driven by Selenium.

Needs `chromium` and `chromium-driver` (apt; `.ci/run` installs them). Without them the test is skipped,
except under CI, where it fails. Screenshots go to `test-artifacts/`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from src.predictions import predict_files
from src.serving.process import ServerProcess
from tests.helpers.cli import REPO

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,700"):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))  # no Selenium Manager
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve_page") / "server.log"
    with ServerProcess([trained.ckpt, "--device", "cpu", "--log-level", "warning"], log=log) as running:
        yield running


def test_the_page_shows_the_classes_of_a_photo_and_rejects_a_non_image(browser, server, trained, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    photo = sorted(Path(trained.val_dir).glob("*.png"))[0]
    expected = predict_files(trained.ckpt, [photo], top_k=3, device="cpu")[0]
    wait = WebDriverWait(browser, 30)
    browser.get(server.url)
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "model"), "10 classes"))

    browser.find_element(By.ID, "file").send_keys(str(photo))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#predictions li")) == 3)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#predictions .class-name")]
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#predictions .probability")]
    assert names == expected["classes"]
    assert shown == [f"{100 * p:.1f} %" for p in expected["probs"]]
    assert browser.find_element(By.ID, "preview").get_property("naturalWidth") == 28
    assert not browser.find_element(By.ID, "error").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    browser.find_element(By.ID, "file").send_keys(str(notes))
    error = wait.until(expected_conditions.visibility_of_element_located((By.ID, "error")))
    assert error.text == "Rejected (400): notes.txt: cannot read the image: not an image format PIL can read"
    assert not browser.find_element(By.ID, "result").is_displayed()
    browser.save_screenshot(str(ARTIFACTS / "serve_page_error.png"))
