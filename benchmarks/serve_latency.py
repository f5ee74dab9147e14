"""`deepgen serve` under load, on this machine: the latent explorer's decode latency for the
MNIST conv VAE, and 50 concurrent raters x 40 judgements of a human study.

    python benchmarks/serve_latency.py [--run RUN] [--train-images 20000] [--decodes 300]
        [--raters 50] [--judgements 40]

Without --run, a conv VAE is trained on MNIST for --train-images images first (its quality
does not matter here: decoding costs the same). The server is `deepgen serve` in its own
process on 127.0.0.1; the clients are httpx in this process. Each figure is printed beside
a reference measured in the same run: a decode beside `model.generate` of one code in
this process (plus its PNG), a judgement beside one SQLite insert committed with the
store's settings (WAL, synchronous FULL). Issue 18's goal: decode p95 under 100 ms per image.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import numpy as np
import torch

import deepgen
from deepgen.models import build_model
from deepgen.serve.explorer import image_png
from deepgen.serve.studies import create_study


def percentiles(ms: list[float]) -> str:
    p50, p95 = np.percentile(ms, [50, 95])
    return f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {max(ms):6.1f} ms  (n = {len(ms)})"


def start_server(paths: list[Path], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepgen", "serve", *map(str, paths), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def session_of(page: str) -> dict:
    return {
        "X-Session": re.search(r'deepgen-session" content="(\w+)"', page).group(1),
        "X-Token": re.search(r'deepgen-token" content="(\w+)"', page).group(1),
    }


def decode_latency(url: str, run_id: str, model, n: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as c:
        start = time.perf_counter()
        headers = session_of(c.get(f"/explore/{run_id}").text)
        print(
            "explorer page (loads the model, ranks coordinates): "
            f"{time.perf_counter() - start:.1f} s"
        )
        rng = np.random.default_rng(0)
        ms = []
        for _ in range(n):
            code = rng.normal(size=(1, model.latent_dim)).round(2).tolist()  # new each time
            t = time.perf_counter()
            reply = c.post(f"/api/explore/{run_id}/decode", json={"codes": code}, headers=headers)
            ms.append(1000 * (time.perf_counter() - t))
            assert reply.status_code == 200, reply.text
        cached = []
        for _ in range(50):
            t = time.perf_counter()
            c.post(f"/api/explore/{run_id}/decode", json={"codes": code}, headers=headers)
            cached.append(1000 * (time.perf_counter() - t))
    local = []
    with torch.no_grad():
        for _ in range(n):
            u = torch.randn(1, model.latent_dim)
            t = time.perf_counter()
            image_png(model.generate(model.from_standard(u))[0])
            local.append(1000 * (time.perf_counter() - t))
    print(f"decode over HTTP, one new code per request : {percentiles(ms)}")
    print(f"decode over HTTP, the same code (cached)   : {percentiles(cached)}")
    print(f"reference: generate + PNG in this process : {percentiles(local)}")
    verdict = "met" if np.percentile(ms, 95) < 100 else "NOT met"
    print(f"goal p95 < 100 ms per image: {verdict}")


def rater(url: str, study: str, answers: int, seed: int, pause: float) -> list[tuple[float, int]]:
    rng = np.random.default_rng(seed)
    out = []
    with httpx.Client(base_url=url, timeout=60) as c:
        headers = session_of(c.get(f"/study/{study}").text)
        for _ in range(120):  # the server admits 60 new raters a minute per address
            started = c.post(f"/api/study/{study}/raters", headers=headers)
            if started.status_code != 429:
                break
            time.sleep(1)
        who, token = started.json()["rater"], started.json()["token"]
        nxt = c.get(f"/api/study/{study}/next", headers={"X-Rater": who, "X-Token": token}).json()
        for _ in range(answers):
            body = {"rater": who, "position": nxt["position"], "image": nxt["image"]}
            body |= {"answer": str(rng.choice(["real", "fake"])), "response_ms": 500.0}
            for _ in range(50):
                t = time.perf_counter()
                reply = c.post(
                    f"/api/study/{study}/judgements", json=body, headers={"X-Token": token}
                )
                out.append((1000 * (time.perf_counter() - t), reply.status_code))
                if reply.status_code != 429:
                    break
                time.sleep(0.1)
            nxt = reply.json()["next"]
            time.sleep(pause)
    return out


def sqlite_reference(folder: Path, n: int = 300) -> list[float]:
    con = sqlite3.connect(folder / "ref.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (a TEXT, b INTEGER, c TEXT)")
    ms = []
    for i in range(n):
        t = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?, ?)", ("rater", i, "real"))
        con.execute("COMMIT")
        ms.append(1000 * (time.perf_counter() - t))
    con.close()
    return ms


def load(url: str, study_dir: Path, raters: int, answers: int, pause: float) -> None:
    """``raters`` raters at once, each answering ``answers`` images with ``pause`` seconds
    between answers (0: as fast as the server replies)."""
    with sqlite3.connect(study_dir / "study.db") as con:
        before = con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
    start = time.perf_counter()
    with ThreadPoolExecutor(raters) as pool:
        parts = list(
            pool.map(lambda s: rater(url, study_dir.name, answers, s, pause), range(raters))
        )
    seconds = time.perf_counter() - start
    calls = [c for part in parts for c in part]
    ok = [ms for ms, status in calls if status == 200]
    statuses = sorted({status for _, status in calls})
    with sqlite3.connect(study_dir / "study.db") as con:
        rows = con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] - before
    print(
        f"{raters} raters x {answers} judgements, {pause:g} s between answers: {rows} new rows "
        f"(expected {raters * answers}), statuses {statuses}, {len(ok) / seconds:.0f} judgements/s"
    )
    print(f"judgement POST (store + next image)        : {percentiles(ok)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a trained image model with a latent space")
    ap.add_argument("--train-images", type=int, default=20000)
    ap.add_argument("--decodes", type=int, default=300)
    ap.add_argument("--raters", type=int, default=50)
    ap.add_argument("--judgements", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = args.run
        if run is None:
            run = root / "conv-vae"
            data = deepgen.load_dataset("mnist")
            model = build_model("vae", {"net": "conv"}, data.data_shape, seed=0)
            t = time.perf_counter()
            deepgen.fit(
                model, data, out=run, images=args.train_images, progress=False, log=lambda m: None
            )
            print(
                f"trained a conv VAE on {args.train_images} MNIST images in "
                f"{time.perf_counter() - t:.0f} s"
            )
        model = deepgen.load(run, device="cpu")
        study_dir = create_study(
            [run], root / "study", images=args.judgements - 4, checks=4, tutorial=0
        )
        port = 8765
        proc = start_server(sorted({root, run}), port)
        url = f"http://127.0.0.1:{port}"
        try:
            rid = re.search(
                rf'data-run="(\w+)" data-name="{run.name}"', httpx.get(f"{url}/").text
            ).group(1)
            decode_latency(url, rid, model, args.decodes)
            for pause in (0.0, 1.0):  # as fast as possible; a quick person's pace
                load(url, study_dir, args.raters, args.judgements, pause)
            ref = percentiles(sqlite_reference(root))
            print(f"reference: one SQLite commit, same settings: {ref}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
