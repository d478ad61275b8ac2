"""`faceclust serve` in a real browser: Debian's Chromium driven by selenium, on a catalog made
by the real CLI and models from real photos (../shared/data). A person is split in two first
(as a too-strict clustering would): the suggestions must offer that pair first, a yes merges
it, a no is never asked again; a face is rejected and the rejection undone; every change is
then checked through the library. Screenshots at desktop and phone width are checked for the
expected elements (and kept in $FACECLUST_SCREENSHOTS when it names a folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.models, pytest.mark.shared, pytest.mark.slow]

LFW_PEOPLE = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Serena_Williams"]
PHOTOS_EACH = 5


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    browser, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Chromium and its driver are not installed (Debian packages 'chromium' and "
                    "'chromium-driver'; .ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def library(shared_data, tmp_path_factory):
    """Real LFW photos of four people scanned and clustered by the real CLI; then the biggest
    person is split in two through the library."""
    root = tmp_path_factory.mktemp("served")
    people = [p for p in LFW_PEOPLE if len(list((shared_data / "lfw_dev" / p).glob("*.jpg"))) >= PHOTOS_EACH]
    if len(people) < 3:
        pytest.skip("lfw_dev lacks the people this test uses")
    for person in people:
        for photo in sorted((shared_data / "lfw_dev" / person).glob("*.jpg"))[:PHOTOS_EACH]:
            link = root / "photos" / person / photo.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(photo)
    catalog = root / "catalog.sqlite"
    for args in (["scan", str(root / "photos")], ["cluster"]):
        done = subprocess.run([sys.executable, "-m", "faceclust", *args, "--catalog", str(catalog), "--quiet"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    from faceclust.catalog import Catalog
    from faceclust.people import list_people, new_person

    biggest = max(list_people(catalog), key=lambda p: p["faces"])
    with Catalog(catalog) as cat:
        faces = [f["id"] for f in cat.faces_page(biggest["id"], 100)[0]]
    split = new_person(catalog, faces[:2]).person
    return {"catalog": catalog, "root": root, "kept": biggest["id"], "split": split, "moved": faces[:2]}


@pytest.fixture
def server(library):
    from faceclust.serve.server import make_server

    server, sock, served = make_server(library["catalog"], port=0, out=library["root"] / "albums")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield served
    server.should_exit = True
    thread.join(10)
    sock.close()


def _shots_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("FACECLUST_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_review_in_chromium(library, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from faceclust.catalog import Catalog
    from faceclust.people import list_people

    catalog = library["catalog"]
    driver = _browser()
    wait = WebDriverWait(driver, 20)
    shots = _shots_dir(tmp_path)

    def key(letter: str):
        driver.find_element(By.TAG_NAME, "body").send_keys(letter)

    def card():
        found = driver.find_elements(By.ID, "card")
        if not found:
            return None
        c = found[0]
        group = [int(e.get_attribute("value")) for e in c.find_elements(By.CSS_SELECTOR, "input[name=faces]")]
        return tuple(int(v) if v else None for v in (c.get_attribute("data-a"), c.get_attribute("data-b"),
                                                     c.get_attribute("data-face"))) + (tuple(group),)

    def answered(before):
        wait.until(lambda d: d.find_elements(By.ID, "note") or d.find_elements(By.ID, "no-suggestions"))
        return card() != before or before is None

    try:
        driver.set_window_size(1280, 900)
        driver.get(server.url)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".grid.people")))
        assert "token=" not in driver.current_url  # moved into a cookie
        cards = driver.find_elements(By.CSS_SELECTOR, ".grid.people li.card:not(.unknown)")
        assert len(cards) == len(list_people(catalog))
        images = driver.find_elements(By.CSS_SELECTOR, ".card img")
        assert images
        # Thumbnails are cut on demand: wait until each has loaded (or failed), then check all did.
        wait.until(lambda d: all(img.get_property("complete") for img in images))
        assert all(img.get_property("naturalWidth") > 0 for img in images)
        driver.save_screenshot(str(shots / "people-desktop.png"))

        # Name a person (a hostile name: it must show as text).
        driver.get(server.url.split("?")[0] + f"person/{library['kept']}")
        rename = wait.until(ec.presence_of_element_located((By.ID, "rename")))
        rename.clear()
        rename.send_keys("Ann <b>bold</b>")
        rename.submit()
        wait.until(ec.text_to_be_present_in_element((By.ID, "person-name"), "Ann <b>bold</b>"))
        assert not driver.find_elements(By.CSS_SELECTOR, "#person-name b")
        assert {p["id"]: p["name"] for p in list_people(catalog)}[library["kept"]] == "Ann <b>bold</b>"

        # Suggestions: the split pair first; y merges it.
        driver.get(server.url.split("?")[0] + "suggestions")
        wait.until(lambda d: card() is not None)
        driver.save_screenshot(str(shots / "suggestions-desktop.png"))
        first = card()
        assert {first[0], first[1]} == {library["kept"], library["split"]}
        key("y")
        wait.until(lambda d: card() != first)
        ids = {p["id"] for p in list_people(catalog)}
        assert library["split"] not in ids and library["kept"] in ids  # one person again, the name kept
        with Catalog(catalog) as cat:
            assert {cat.assignments_of([f])[f][0] for f in library["moved"]} == {library["kept"]}

        # n: kept apart, never asked again; s: skipped.
        second = card()
        assert second is not None
        key("n")
        wait.until(lambda d: card() != second)
        with Catalog(catalog) as cat:
            if second[1] is not None:  # two people: kept apart
                assert tuple(sorted(second[:2])) in cat.apart_pairs()
            else:  # a face (or a group of faces): never this person
                assert all((face, second[0]) in cat.rejections() for face in (second[2], *second[3]) if face)
        seen = []
        for _ in range(40):
            now = card()
            if now is None:
                break
            assert now != second
            seen.append(now)
            key("s")
            wait.until(lambda d, now=now: card() != now)
        assert seen, "a third suggestion to skip"
        assert driver.find_elements(By.ID, "no-suggestions")

        # Reject a face from a person's page, then undo with the key.
        driver.get(server.url.split("?")[0] + f"person/{library['kept']}")
        face = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#faces li.face label")))
        face_id = int(face.find_element(By.TAG_NAME, "input").get_attribute("value"))
        face.click()
        assert driver.find_element(By.ID, "selected-count").text == "1"
        driver.find_element(By.ID, "reject").click()
        wait.until(ec.presence_of_element_located((By.ID, "note")))
        with Catalog(catalog) as cat:
            assert face_id not in cat.assignments_of([face_id]) and (face_id, library["kept"]) in cat.rejections()
        key("u")
        wait.until(ec.text_to_be_present_in_element((By.ID, "note"), "undone"))
        with Catalog(catalog) as cat:
            assert cat.assignments_of([face_id])[face_id][0] == library["kept"]
            assert (face_id, library["kept"]) not in cat.rejections()
        driver.save_screenshot(str(shots / "person-desktop.png"))

        # A phone: one column of suggestion sides, nothing wider than the screen, the keys listed.
        driver.set_window_size(390, 844)
        for page in ("", "suggestions", f"person/{library['kept']}"):
            driver.get(server.url.split("?")[0] + page)
            wait.until(ec.presence_of_element_located((By.TAG_NAME, "footer")))
            width = driver.execute_script("return document.documentElement.scrollWidth")
            inner = driver.execute_script("return window.innerWidth")
            assert width <= inner, (page, width, inner)
            assert "Keys:" in driver.find_element(By.TAG_NAME, "footer").text
            driver.save_screenshot(str(shots / f"{(page.split('/')[0] or 'people')}-phone.png"))
    finally:
        driver.quit()
    # Everything above is in the history, newest first: the undo, the reject, the answers, the name.
    history = json.loads(subprocess.run([sys.executable, "-m", "faceclust", "history", "--catalog", str(catalog),
                                         "--json"], capture_output=True, text=True, check=True).stdout)
    kinds = [h["kind"] for h in history]
    assert kinds[:2] == ["undo", "reject"] and "merge" in kinds and "name" in kinds
