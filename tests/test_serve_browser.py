"""`deepgen serve` as a real server (uvicorn, loopback only): a rater in Chromium, the
explorer's slider, the dashboard, 50 concurrent raters, and a server killed mid-study.

The browser is Debian's chromium driven by Selenium; without it these tests skip on a
developer's machine and fail in CI (CI set), where .ci/run installs it.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
import torch
from PIL import Image

import deepgen
from deepgen.serve.hype import study_results
from deepgen.serve.store import Study
from deepgen.serve.studies import create_study

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*paths: Path, port: int) -> subprocess.Popen:
    """`deepgen serve PATHS` in a new process, returned once it answers (at most 60 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepgen", "serve", *map(str, paths), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            message = proc.stderr.read().decode()
            proc.stderr.close()
            raise AssertionError(f"the server stopped: {message}")
        time.sleep(0.2)
    stop_server(proc)
    raise AssertionError("the server did not answer within 60 s")


def stop_server(proc: subprocess.Popen, kill: bool = False) -> None:
    """End the server (SIGKILL with ``kill``, else SIGTERM, then SIGKILL after 10 s)."""
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()


@contextmanager
def server(*paths: Path):
    port = free_port()
    proc = start_server(*paths, port=port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def runs_url(served_runs):
    """One server of ``served_runs`` for the tests that only read them."""
    with server(served_runs) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        message = (
            "chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def source_of(study: Path, image: str) -> str:
    with sqlite3.connect(study / "study.db") as con:
        return con.execute("SELECT source FROM images WHERE id = ?", (image,)).fetchone()[0]


def test_a_rater_plays_a_whole_study_in_the_browser(browser, served_runs, tmp_path):
    """20 images (+2 practice, +2 checks), answered as a rater who is fooled by every VAE
    image and by no GAN image: the rows in SQLite and the fooling rates say exactly that."""
    study = create_study(
        [served_runs / "vae", served_runs / "gan"], tmp_path / "s", images=20, checks=2, tutorial=2
    )
    policy = {"real": "real", "noise": "fake", "vae": "real", "gan": "fake"}
    sent = []
    with server(study) as url:
        browser.get(f"{url}/study/s")
        browser.find_element("id", "start").click()
        root = browser.find_element("id", "study")
        for _ in range(30):  # 24 images; bounded
            wait_for(browser, lambda d: root.get_attribute("data-state") in ("ready", "finished"))
            if root.get_attribute("data-state") == "finished":
                break
            src = browser.find_element("id", "image").get_attribute("src")
            image = re.search(r"/images/([0-9a-f]{16})\.png$", src).group(1)
            answer = policy[source_of(study, image)]
            sent.append((int(root.get_attribute("data-position")), image, answer))
            browser.find_element("id", f"answer-{answer}").click()
        assert root.get_attribute("data-state") == "finished"
    saved = Study(study).judgements()
    assert len(saved) == len(sent) == 24
    assert [(j["position"], j["image"], j["answer"]) for j in saved] == sent
    assert len({j["rater"] for j in saved}) == 1
    assert all(j["response_ms"] > 0 for j in saved)
    results = study_results(Study(study))
    assert results["models"]["vae"]["fooling_rate"]["mean"] == 100.0
    assert results["models"]["gan"]["fooling_rate"]["mean"] == 0.0
    assert results["real"]["judged_real"]["mean"] == 100.0
    assert results["raters"] == {"total": 1, "flagged": 0, "scored": 1}


def decoded_image(browser) -> np.ndarray:
    src = browser.find_element("id", "decoded").get_attribute("src")
    png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    return np.asarray(png, dtype=np.float32)[::4, ::4] / 255


def test_moving_a_slider_shows_what_the_model_generates_for_that_code(
    browser, served_runs, runs_url
):
    from selenium.webdriver.common.keys import Keys

    model = deepgen.load(served_runs / "gan", device="cpu")
    page = httpx.get(f"{runs_url}/").text
    rid = re.search(r'data-run="(\w+)" data-name="gan"', page).group(1)
    browser.get(f"{runs_url}/explore/{rid}")
    root = browser.find_element("id", "explorer")
    wait_for(browser, lambda d: root.get_attribute("data-state") == "ready")
    before = decoded_image(browser)
    slider = browser.find_elements("css selector", "input[data-dim]")[0]
    dim = int(slider.get_attribute("data-dim"))
    slider.send_keys(*[Keys.ARROW_RIGHT] * 20)  # 20 steps of 0.05: u_dim = 1
    wait_for(
        browser,
        lambda d: (
            root.get_attribute("data-state") == "ready"
            and f"{1.0:g}" in root.get_attribute("data-decoded").split(",")[dim]
        ),
    )
    code = [float(v) for v in root.get_attribute("data-decoded").strip("[]").split(",")]
    after = decoded_image(browser)
    assert code[dim] == pytest.approx(1.0) and sum(abs(v) for v in code) == pytest.approx(1.0)
    with torch.no_grad():
        want = model.generate(model.from_standard(torch.tensor([code]))).numpy()[0, 0]
    assert np.abs(after - want).max() <= 0.5 / 255 + 1e-6
    assert np.abs(after - before).max() >= 2 / 255  # the picture changed (an early GAN: a little)


def test_the_dashboard_shows_three_runs_and_compares_two(browser, runs_url):
    browser.get(f"{runs_url}/")
    rows = browser.find_elements("css selector", "#runs tr[data-run]")
    assert sorted(r.get_attribute("data-name") for r in rows) == ["cvae", "gan", "vae"]
    for row in rows[:2]:
        row.find_element("css selector", "input[type=checkbox]").click()
    browser.find_element("id", "compare").click()
    wait_for(browser, lambda d: d.find_elements("css selector", "section.run"))
    sections = browser.find_elements("css selector", "section.run")
    assert len(sections) == 2
    images = browser.find_elements("css selector", "section.run img.samples")
    assert len(images) == 2
    wait_for(browser, lambda d: all(i.get_attribute("naturalWidth") != "0" for i in images))
    assert "figure" in browser.page_source  # the training curves


def rate(url: str, study: str, answers: int, seed: int) -> list[tuple]:
    """One simulated rater: (position, image, answer, status) of each judgement it sent,
    retrying a 429 after a pause (at most 20 tries per request)."""
    rng = np.random.default_rng(seed)
    sent = []
    with httpx.Client(base_url=url, timeout=30) as c:
        page = c.get(f"/study/{study}").text
        session = re.search(r'deepgen-session" content="(\w+)"', page).group(1)
        token = re.search(r'deepgen-token" content="(\w+)"', page).group(1)
        started = c.post(
            f"/api/study/{study}/raters", headers={"X-Session": session, "X-Token": token}
        )
        rater, token = started.json()["rater"], started.json()["token"]
        nxt = c.get(f"/api/study/{study}/next", headers={"X-Rater": rater, "X-Token": token}).json()
        for _ in range(answers):
            body = {"rater": rater, "position": nxt["position"], "image": nxt["image"]}
            body |= {"answer": str(rng.choice(["real", "fake"])), "response_ms": 300.0}
            for _ in range(20):
                reply = c.post(
                    f"/api/study/{study}/judgements", json=body, headers={"X-Token": token}
                )
                if reply.status_code != 429:
                    break
                time.sleep(0.2)
            sent.append((rater, body["position"], body["image"], body["answer"], reply.status_code))
            if reply.status_code != 200:
                break
            nxt = reply.json()["next"]
    return sent


def test_fifty_concurrent_raters_store_every_judgement_exactly_once(served_runs, tmp_path):
    study = create_study([served_runs / "vae"], tmp_path / "load", images=36, checks=4, tutorial=0)
    with server(study) as url, ThreadPoolExecutor(50) as pool:
        sent = [j for part in pool.map(lambda s: rate(url, "load", 40, s), range(50)) for j in part]
    assert {status for *_, status in sent} == {200}
    with sqlite3.connect(study / "study.db") as con:
        stored = con.execute("SELECT rater, position, image, answer FROM judgements").fetchall()
    assert len(stored) == len(sent) == 50 * 40
    assert sorted(stored) == sorted(j[:4] for j in sent)


def test_killing_the_server_loses_no_acknowledged_judgement(served_runs, tmp_path):
    study = create_study([served_runs / "vae"], tmp_path / "kill", images=60, checks=0, tutorial=0)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(study, port=port)
    acknowledged, stop = [], threading.Event()
    page = httpx.get(f"{url}/study/kill").text
    session = re.search(r'deepgen-session" content="(\w+)"', page).group(1)
    page_token = re.search(r'deepgen-token" content="(\w+)"', page).group(1)
    headers = {"X-Session": session, "X-Token": page_token}
    started = httpx.post(f"{url}/api/study/kill/raters", headers=headers).json()
    rater, token = started["rater"], started["token"]

    def answer_until_killed():
        nxt = httpx.get(f"{url}/api/study/kill/next", headers={"X-Rater": rater, "X-Token": token})
        nxt = nxt.json()
        while not stop.is_set() and not nxt["finished"]:
            body = {"rater": rater, "position": nxt["position"], "image": nxt["image"]}
            body |= {"answer": "fake", "response_ms": 1.0}
            try:
                reply = httpx.post(
                    f"{url}/api/study/kill/judgements", json=body, headers={"X-Token": token}
                )
            except httpx.TransportError:
                return
            if reply.status_code == 200:
                acknowledged.append(body["position"])
                nxt = reply.json()["next"]
            time.sleep(0.02)

    worker = threading.Thread(target=answer_until_killed)
    worker.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_server(proc, kill=True)  # SIGKILL: no shutdown code runs
    stop.set()
    worker.join(30)
    assert len(acknowledged) >= 15
    with server(study) as url2:  # restarted on the same study: the rater goes on
        with sqlite3.connect(study / "study.db") as con:
            stored = [
                p for (p,) in con.execute("SELECT position FROM judgements ORDER BY position")
            ]
        assert set(acknowledged) <= set(stored)
        assert stored == list(range(len(stored)))  # nothing beyond what was sent
        assert len(stored) - len(acknowledged) <= 1  # at most the one in flight
        nxt = httpx.get(
            f"{url2}/api/study/kill/next", headers={"X-Rater": rater, "X-Token": token}
        ).json()
        assert nxt["position"] == len(stored)
