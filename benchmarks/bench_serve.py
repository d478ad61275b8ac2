"""Page times of `faceclust serve` on a large catalog: a synthetic library of N faces (one
person with 2,000 faces, a long tail of people, 10% of faces unknown), made through the
catalog's own writers, then every page timed through the app in process (routing, SQL,
templates), and, when Chromium and its driver are installed, the person page with 2,000 faces
loaded in the browser. The same pages of a 1,000-face library are the reference in the run.

    .venv/bin/python benchmarks/bench_serve.py --faces 100000

Thumbnails are not part of page times (they load lazily, each its own request, cached).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIG = 2000


def build(path: Path, faces: int, seed: int = 0) -> int:
    """A catalog of ``faces`` faces (one per photo) with people; returns the 2,000-face person."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice, record_model
    from faceclust.records import FaceArrays, PhotoResult

    rng = np.random.default_rng(seed)
    model = ModelChoice.resolve()
    dim = 256
    # People: one of BIG faces, then sizes from a long tail (many of 1-3 faces), 10% unknown.
    sizes = [BIG]
    left = int(faces * 0.9) - BIG
    while left > 0:
        size = int(min(left, max(1, rng.zipf(1.7)), 400))
        sizes.append(size)
        left -= size
    labels = np.concatenate([np.full(s, k) for k, s in enumerate(sizes)] + [np.full(faces - sum(sizes), -1)])
    centres = rng.normal(size=(len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    with Catalog(path) as cat:
        batch = []
        for i in range(faces):
            centre = centres[labels[i]] if labels[i] >= 0 else rng.normal(size=dim) / np.sqrt(dim)
            v = centre + rng.normal(scale=0.35 / np.sqrt(dim), size=dim)
            arrays = FaceArrays(boxes=np.array([[100, 100, 220, 220]], np.float32), scores=np.array([1.0], np.float32),
                                landmarks=np.zeros((1, 5, 2), np.float32),
                                embeddings=(v / np.linalg.norm(v)).astype(np.float32)[None])
            batch.append(PhotoResult("faces", f"/bench/{i // 500:04d}/IMG_{i:07d}.jpg", 1000 + i, i, f"h{i}",
                                     4032, 3024, arrays))
            if len(batch) == 2000:
                cat.write_results(batch, model.model_id, "bench", None)
                batch = []
        if batch:
            cat.write_results(batch, model.model_id, "bench", None)
        record_model(cat, model)
        face_ids = np.array([r[0] for r in cat.db.execute("SELECT id FROM faces ORDER BY id")])
        rows = [(int(f), -(int(label) + 1), "cluster") for f, label in zip(face_ids, labels) if label >= 0]
        mapping = cat.write_clustering(rows, len(sizes), replace=True, clustered=face_ids.tolist())
        big = mapping[-1]
        for k in range(1, min(len(sizes), 400)):
            cat.set_person(mapping[-(k + 1)], name=f"Person {k:03d}")
    return big


def time_pages(catalog: Path, big: int, rounds: int, per_page: int) -> dict[str, float]:
    from starlette.testclient import TestClient

    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard

    guard = Guard("127.0.0.1", 8765)
    client = TestClient(create_app(catalog, guard, faces_per_page=per_page), base_url="http://127.0.0.1:8765")
    client.get(f"/?token={guard.token}")
    pages = {"people (first page)": "/", "people (page 20)": "/?page=20", "people: search 'person 01'": "/?q=person%2001",
             f"person with {BIG} faces": f"/person/{big}", "unknown faces": "/unknown"}
    out = {}
    for name, url in pages.items():
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            reply = client.get(url)
            times.append(time.perf_counter() - started)
            assert reply.status_code == 200, (url, reply.status_code)
        out[name] = statistics.median(times)
    started = time.perf_counter()
    client.get("/suggestions")
    out["suggestions (computed)"] = time.perf_counter() - started
    started = time.perf_counter()
    client.get("/suggestions")
    out["suggestions (cached)"] = time.perf_counter() - started
    return out


def browser_load(catalog: Path, big: int, per_page: int) -> dict[str, float]:
    """Seconds from navigation to DOMContentLoaded of pages in Chromium (none without it)."""
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver_path:
        return {}
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from faceclust.serve.server import make_server

    server, sock, served = make_server(catalog, port=0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    review = server.config.app.app.state.review
    while not server.started or review._suggestions is None:  # measured after the queue's warm-up
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_window_size(1280, 900)
        driver.get(served.url)
        out = {}
        for name, page in ((f"Chromium: person with {BIG} faces, DOMContentLoaded", f"person/{big}"),
                           ("Chromium: people (first page), DOMContentLoaded", ""),
                           ("Chromium: a page without faces (reference), DOMContentLoaded", "person/999999999")):
            loads = []
            for _ in range(3):
                driver.get(served.url.split("?")[0] + page)
                timing = driver.execute_script("const t = performance.getEntriesByType('navigation')[0];"
                                               "return [t.domContentLoadedEventEnd, t.loadEventEnd];")
                loads.append(timing[0] / 1000)
            out[name] = statistics.median(loads)
        return out
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(10)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from faceclust.serve.app import FACES_PER_PAGE

    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n in (1000 + BIG, args.faces):
            catalog = Path(tmp) / f"c{n}.sqlite"
            started = time.perf_counter()
            big = build(catalog, n)
            print(f"built {n} faces in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            results[n] = time_pages(catalog, big, args.rounds, FACES_PER_PAGE)
            results[n][f"person with {BIG} faces, all on one page"] = time_pages(
                catalog, big, args.rounds, BIG)[f"person with {BIG} faces"]
            results[n].update(browser_load(catalog, big, FACES_PER_PAGE))
        small, large = results
        print(f"\n| page | {small:,} faces (s) | {large:,} faces (s) | ratio |")
        print("|---|---|---|---|")
        for name in results[large]:
            a, b = results[small][name], results[large][name]
            print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.1f}x |")


if __name__ == "__main__":
    main()
