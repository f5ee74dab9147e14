"""`deepgen serve` through FastAPI's TestClient: human studies (the store, the numbers),
the latent explorer, the dashboard and what the server refuses. The real server, the
browser, load and kill -9 are in test_serve_browser.py."""

from __future__ import annotations

import io
import json
import re
import sqlite3

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

import deepgen
from deepgen.errors import ConfigError
from deepgen.serve.app import create_app
from deepgen.serve.hype import bootstrap_rates, study_results, write_results
from deepgen.serve.store import Study
from deepgen.serve.studies import create_study


@pytest.fixture(scope="module")
def study_path(served_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("studies") / "s1"
    create_study([served_runs / "vae", served_runs / "gan"], out, images=20, checks=2, tutorial=2)
    return out


def fresh_study(served_runs, tmp_path, **kw):
    return Study(create_study([served_runs / "vae"], tmp_path / "s", **kw))


def client(*paths, limits=None):
    return TestClient(create_app(list(paths), limits={} if limits is None else limits))


def page_session(c: TestClient, url: str) -> dict:
    text = c.get(url).text
    session = re.search(r'deepgen-session" content="(\w+)"', text).group(1)
    token = re.search(r'deepgen-token" content="(\w+)"', text).group(1)
    return {"X-Session": session, "X-Token": token}


def truth(study: Study, image: str) -> str:
    with sqlite3.connect(study.path / "study.db") as con:
        (source,) = con.execute("SELECT source FROM images WHERE id = ?", (image,)).fetchone()
    return "real" if source == "real" else "fake"


def rows(study: Study) -> int:
    with sqlite3.connect(study.path / "study.db") as con:
        return con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]


# --- the study folder -----------------------------------------------------------------------
def test_a_study_holds_the_images_it_says_under_opaque_ids(study_path, served_runs):
    study = Study(study_path)
    with sqlite3.connect(study_path / "study.db") as con:
        counts = {
            (kind, source): n
            for kind, source, n in con.execute(
                "SELECT kind, source, COUNT(*) FROM images GROUP BY kind, source"
            )
        }
        ids = [i for (i,) in con.execute("SELECT id FROM images")]
    assert counts == {
        ("study", "real"): 10,
        ("study", "vae"): 5,
        ("study", "gan"): 5,
        ("tutorial", "real"): 1,
        ("tutorial", "vae"): 1,
        ("check", "real"): 1,
        ("check", "noise"): 1,
    }
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert sorted(p.stem for p in (study_path / "images").glob("*.png")) == sorted(ids)
    meta = study.meta
    assert meta["models"] == {
        "vae": str((served_runs / "vae").resolve()),
        "gan": str((served_runs / "gan").resolve()),
    }
    # every real image shown is a test image of the run's data, pixel for pixel
    test = {bytes(x.numpy()) for x in deepgen.run_data(served_runs / "vae")["data"]["test"].x}
    with sqlite3.connect(study_path / "study.db") as con:
        reals = [i for (i,) in con.execute("SELECT id FROM images WHERE source = 'real'")]
    for image in reals:
        arr = np.asarray(Image.open(study_path / "images" / f"{image}.png"))
        assert bytes(arr.reshape(-1)) in test


def test_each_rater_gets_every_image_once_in_their_own_seeded_order(study_path):
    study = Study(study_path)
    with sqlite3.connect(study_path / "study.db") as con:
        first, second = study.sequence(1, con), study.sequence(2, con)
        assert study.sequence(1, con) == first
        tutorial = [i for (i,) in con.execute("SELECT id FROM images WHERE kind = 'tutorial'")]
        total = con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    assert sorted(first) == sorted(second) and len(set(first)) == len(first) == total
    assert first[:2] == tutorial == second[:2]
    assert first != second


def test_bad_study_options_stop_before_anything_is_written(served_runs, tmp_path):
    for kw, match in (
        ({"images": 21}, "must be even"),
        ({"images": 6}, "multiple of the 2"),
        ({"checks": 3}, "even counts"),
        ({"images": 200}, "needs 104 real test images; there are 64"),
    ):
        with pytest.raises(ConfigError, match=match):
            create_study([served_runs / "vae", served_runs / "gan"], tmp_path / "s", **kw)
        assert list(tmp_path.iterdir()) == []
    create_study([served_runs / "vae"], tmp_path / "s", images=4)
    with pytest.raises(ConfigError, match="already exists"):
        create_study([served_runs / "vae"], tmp_path / "s", images=4)


# --- a rater through the API ----------------------------------------------------------------
def start(c: TestClient, name: str) -> tuple[str, str]:
    reply = c.post(f"/api/study/{name}/raters", headers=page_session(c, f"/study/{name}"))
    assert reply.status_code == 200, reply.text
    return reply.json()["rater"], reply.json()["token"]


def test_a_rater_plays_a_study_and_every_answer_is_one_row(served_runs, tmp_path):
    study = fresh_study(served_runs, tmp_path, images=8, checks=2, tutorial=2)
    c = client(study.path)
    rater, token = start(c, "s")
    nxt = c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": token}).json()
    feedback = []
    while not nxt["finished"]:
        body = {"rater": rater, "position": nxt["position"], "image": nxt["image"]}
        body |= {"answer": truth(study, nxt["image"]), "response_ms": 800}
        reply = c.post("/api/study/s/judgements", json=body, headers={"X-Token": token}).json()
        feedback.append(reply["feedback"])
        nxt = reply["next"]
    assert nxt["done"] == nxt["total"] == 12 == rows(study)
    assert feedback[:2] == [truth(study, j["image"]) for j in study.judgements()[:2]]
    assert feedback[2:] == [None] * 10
    saved = study.judgements()
    assert [j["position"] for j in saved] == list(range(12))
    assert all(j["rater"] == rater and j["response_ms"] == 800 for j in saved)


def test_the_same_answer_sent_twice_is_stored_once_and_a_change_is_refused(served_runs, tmp_path):
    study = fresh_study(served_runs, tmp_path, images=4, checks=0, tutorial=0)
    c = client(study.path)
    rater, token = start(c, "s")
    nxt = c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": token}).json()
    body = {"rater": rater, "position": 0, "image": nxt["image"], "answer": "fake"}
    body["response_ms"] = 10
    for _ in range(2):
        assert c.post("/api/study/s/judgements", json=body, headers={"X-Token": token}).is_success
    assert rows(study) == 1
    changed = c.post(
        "/api/study/s/judgements", json=body | {"answer": "real"}, headers={"X-Token": token}
    )
    assert changed.status_code == 409 and rows(study) == 1
    assert study.judgements()[0]["answer"] == "fake"


def test_forged_tokens_foreign_images_and_bad_answers_are_refused_and_write_nothing(
    served_runs, tmp_path
):
    study = fresh_study(served_runs, tmp_path, images=4, checks=0, tutorial=0)
    c = client(study.path)
    rater, token = start(c, "s")
    _other_rater, other_token = start(c, "s")
    first = c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": token}).json()
    good = {"rater": rater, "position": 0, "image": first["image"], "answer": "real"}
    good["response_ms"] = 5
    cases = [
        (good, {"X-Token": "forged"}, 403),
        (good, {"X-Token": other_token}, 403),
        (good | {"image": "0123456789abcdef"}, {"X-Token": token}, 404),
        (good | {"position": 1}, {"X-Token": token}, 404),
        (good | {"answer": "maybe"}, {"X-Token": token}, 422),
        (good | {"response_ms": -1}, {"X-Token": token}, 422),
        (good | {"extra": 1}, {"X-Token": token}, 422),
        (good, {}, 422),
    ]
    for body, headers, status in cases:
        assert c.post("/api/study/s/judgements", json=body, headers=headers).status_code == status
    assert c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": "x"}).status_code == 403
    forged_start = c.post("/api/study/s/raters", headers={"X-Session": "a" * 24, "X-Token": "b"})
    assert forged_start.status_code == 403
    assert rows(study) == 0
    with sqlite3.connect(study.path / "study.db") as con:
        assert con.execute("SELECT COUNT(*) FROM raters").fetchone()[0] == 2


def test_oversized_and_unsized_bodies_are_refused_before_the_application(served_runs, tmp_path):
    study = fresh_study(served_runs, tmp_path, images=4, checks=0, tutorial=0)
    c = client(study.path)
    rater, token = start(c, "s")
    big = {"rater": rater, "position": 0, "image": "x" * 20_000, "answer": "real"}
    reply = c.post("/api/study/s/judgements", json=big, headers={"X-Token": token})
    assert reply.status_code == 413

    def chunks():
        yield b'{"rater": "'
        yield b'"}'

    unsized = c.post("/api/study/s/judgements", content=chunks(), headers={"X-Token": token})
    assert unsized.status_code == 411
    assert rows(study) == 0


def test_rates_are_limited(served_runs, tmp_path):
    from limits import parse

    study = fresh_study(served_runs, tmp_path, images=8, checks=0, tutorial=0)
    c = client(study.path, limits={"judgement": parse("3/minute"), "rater": parse("2/minute")})
    rater, token = start(c, "s")
    start(c, "s")
    assert c.post("/api/study/s/raters", headers=page_session(c, "/study/s")).status_code == 429
    statuses = []
    for _ in range(5):
        nxt = c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": token}).json()
        body = {"rater": rater, "position": nxt["position"], "image": nxt["image"]}
        body |= {"answer": "real", "response_ms": 1}
        statuses.append(
            c.post("/api/study/s/judgements", json=body, headers={"X-Token": token}).status_code
        )
    assert statuses == [200, 200, 200, 429, 429] and rows(study) == 3


@pytest.mark.parametrize(
    "path",
    [
        "../gan/config.json",
        "..%2Fgan%2Fconfig.json",
        "%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
        "samples/../../gan/config.json",
        "nothing.png",
    ],
)
def test_files_outside_a_run_folder_are_not_served(served_runs, path):
    c = client(served_runs)
    ids = re.findall(r'data-run="([0-9a-f]+)"', c.get("/").text)
    assert c.get(f"/runs/{ids[0]}/files/config.json").status_code == 200
    assert c.get(f"/runs/{ids[0]}/files/{path}").status_code == 404
    assert c.get(f"/runs/{'0' * 12}/files/config.json").status_code == 404


def test_study_images_are_served_only_by_their_ids(study_path):
    c = client(study_path.parent)
    name = study_path.name
    with sqlite3.connect(study_path / "study.db") as con:
        (image,) = con.execute("SELECT id FROM images LIMIT 1").fetchone()
    assert c.get(f"/study/{name}/images/{image}.png").headers["content-type"] == "image/png"
    for bad in ("../study.db", "..%2Fstudy", "0123456789abcdef"):
        assert c.get(f"/study/{name}/images/{bad}.png").status_code == 404
    assert c.get("/study/nope").status_code == 404


# --- the numbers ----------------------------------------------------------------------------
def simulated_study(p_fool: float, p_real: float, raters: int, images: int, seed: int):
    """judged_real (R, 2I): the first I columns fakes called real with p_fool, the rest
    reals called real with p_real; each image has its own rate around those."""
    rng = np.random.default_rng(seed)
    easy = rng.normal(0, 0.8, 2 * images)  # image difficulty on the logit scale
    base = np.r_[np.full(images, p_fool), np.full(images, p_real)]
    p = 1 / (1 + np.exp(-(np.log(base / (1 - base)) + easy)))
    return (rng.random((raters, 2 * images)) < p).astype(float)


def test_bootstrap_errors_match_the_spread_of_repeated_studies():
    """Over 200 simulated studies of 20 raters x 40 images (each with new raters, images and
    answers), the bootstrap's standard error of the fooling rate is never below the spread
    of the estimates and at most 40% above it (resampling raters and images both counts the
    rater-by-image noise twice: conservative, Owen 2007), and its 95% interval covers the
    mean of all the estimates at least 93% of the time."""
    groups = {"model": np.arange(40), "real": np.arange(40, 80)}
    estimates, errors, intervals = [], [], []
    for seed in range(200):
        judged_real = simulated_study(0.3, 0.8, 20, 40, seed)
        point, reps = bootstrap_rates(judged_real, np.ones_like(judged_real), groups, 400, seed)[
            "model"
        ]
        estimates.append(point)
        errors.append(reps.std(ddof=1))
        intervals.append(np.percentile(reps, [2.5, 97.5]))
    truth_ = np.mean(estimates)
    spread = np.std(estimates, ddof=1)
    assert 1.0 <= np.mean(errors) / spread <= 1.4
    covered = np.mean([lo <= truth_ <= hi for lo, hi in intervals])
    assert covered >= 0.93


def test_a_rater_who_fails_a_check_is_left_out_of_the_numbers(served_runs, tmp_path):
    study = fresh_study(served_runs, tmp_path, images=8, checks=2, tutorial=0)
    c = client(study.path)
    for policy in ("truthful", "all real"):
        rater, token = start(c, "s")
        nxt = c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": token}).json()
        while not nxt["finished"]:
            answer = truth(study, nxt["image"]) if policy == "truthful" else "real"
            body = {"rater": rater, "position": nxt["position"], "image": nxt["image"]}
            body |= {"answer": answer, "response_ms": 100}
            nxt = c.post("/api/study/s/judgements", json=body, headers={"X-Token": token}).json()
            nxt = nxt["next"]
    results = study_results(study)
    assert results["raters"] == {"total": 2, "flagged": 1, "scored": 1}
    assert results["models"]["vae"]["fooling_rate"]["mean"] == 0.0
    assert results["real"]["judged_real"]["mean"] == 100.0
    assert results["models"]["vae"]["hype_inf"]["mean"] == 0.0


def test_results_go_to_eval_json_the_csv_and_the_report(served_runs, tmp_path):
    import shutil

    from deepgen.report import write_report

    run = tmp_path / "vae"
    shutil.copytree(served_runs / "vae", run)
    study = Study(create_study([run], tmp_path / "s", images=8, checks=0, tutorial=0))
    c = client(study.path)
    rater, token = start(c, "s")
    nxt = c.get("/api/study/s/next", headers={"X-Rater": rater, "X-Token": token}).json()
    while not nxt["finished"]:  # calls everything real: fooling rate 100%, reals 100%
        body = {"rater": rater, "position": nxt["position"], "image": nxt["image"]}
        body |= {"answer": "real", "response_ms": 100}
        nxt = c.post("/api/study/s/judgements", json=body, headers={"X-Token": token}).json()
        nxt = nxt["next"]
    write_results(study, study_results(study), log=print)
    human = json.loads((run / "eval.json").read_text())["metrics"]["human"]
    assert human["mean"] == 100.0 and human["reference"]["mean"] == 100.0 and human["n"] == 4
    assert human["hype_inf"]["mean"] == 50.0
    csv_lines = (study.path / "judgements.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 8 and csv_lines[0].startswith("study,rater,position,image")
    html = write_report([run], tmp_path / "report.html").read_text()
    assert "human fooling rate (%)" in html and "HYPE-infinity" in html


def test_study_results_from_the_command_line(served_runs, tmp_path):
    from conftest import run_cli

    study = fresh_study(served_runs, tmp_path, images=4, checks=0, tutorial=0)
    proc = run_cli("study", "results", str(study.path))
    assert proc.returncode == 2 and "no judgements to score yet" in proc.stderr
    assert proc.stderr.count("\n") == 1


# --- the explorer and the dashboard ---------------------------------------------------------
def test_the_explorer_decodes_what_the_model_generates(served_runs):
    c = client(served_runs)
    ids = {
        name: rid
        for rid, name in re.findall(r'data-run="(\w+)" data-name="(\w+)"', c.get("/").text)
    }
    headers = page_session(c, f"/explore/{ids['vae']}")
    code = [[0.5, -1.25], [0.0, 0.0]]
    reply = c.post(f"/api/explore/{ids['vae']}/decode", json={"codes": code}, headers=headers)
    assert reply.status_code == 200
    model = deepgen.load(served_runs / "vae", device="cpu")
    with torch.no_grad():
        want = model.generate(torch.tensor(code)).numpy()
    for url, expected in zip(reply.json()["images"], want):
        import base64

        png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        got = np.asarray(png, dtype=np.float32)[::4, ::4] / 255  # drawn 4x
        assert np.abs(got - expected[0]).max() <= 0.5 / 255 + 1e-6
    bad = [
        ({"codes": [[0.0]]}, headers, 422),
        ({"codes": [[0.0, 11.0]]}, headers, 422),
        ({"codes": [[0.0, 0.0]], "label": 3}, headers, 422),
        ({"codes": [[0.0, 0.0]]}, {"X-Session": headers["X-Session"], "X-Token": "f" * 64}, 403),
    ]
    for body, h, status in bad:
        assert (
            c.post(f"/api/explore/{ids['vae']}/decode", json=body, headers=h).status_code == status
        )
    assert c.get(f"/api/explore/{ids['vae']}/manifold.png").headers["content-type"] == "image/png"
    assert c.get(f"/api/explore/{ids['gan']}/manifold.png").status_code == 409
    cvae = page_session(c, f"/explore/{ids['cvae']}")
    good = c.post(
        f"/api/explore/{ids['cvae']}/decode", json={"codes": [[0.0] * 4], "label": 9}, headers=cvae
    )
    assert good.status_code == 200
    pair = c.get(f"/api/explore/{ids['cvae']}/test-codes?count=2").json()
    assert len(pair["codes"]) == 2 and len(pair["codes"][0]) == 4 and len(pair["labels"]) == 2


def test_the_explorer_puts_the_most_influential_coordinates_first(served_runs):
    from deepgen.serve.explorer import Explorer

    ex = Explorer(served_runs / "gan", device="cpu")
    ranked = ex.influence()
    assert sorted(d for d, _ in ranked) == list(range(8))
    weights = [w for _, w in ranked]
    assert weights == sorted(weights, reverse=True) and weights[-1] >= 0
    top = ranked[0][0]
    u = torch.zeros(2, 8)
    u[1, top] = 1.0  # one standard deviation along the top coordinate moves the image most
    moved = [ex.decode([[0.0] * 8, [1.0 if i == d else 0.0 for i in range(8)]]) for d, _ in ranked]
    change = [float((a[1] - a[0]).pow(2).mean()) for a in moved]
    assert change[0] >= change[-1]


def test_the_dashboard_lists_runs_and_shows_a_broken_one_as_such(served_runs, tmp_path):
    import shutil

    for name in ("vae", "gan"):
        shutil.copytree(served_runs / name, tmp_path / name)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{ not json")
    (tmp_path / "gan" / "results.json").write_text("{")  # half-written
    c = client(tmp_path)
    page = c.get("/")
    assert page.status_code == 200
    assert page.text.count('data-run="') == 3
    assert re.search(r'class="broken" data-run="\w+" data-name="broken"', page.text)
    ids = re.findall(r'value="([0-9a-f]{12})"', page.text)
    assert len(ids) == 2  # the unreadable run cannot be selected
    compare = c.get("/compare?" + "&".join(f"run={i}" for i in ids))
    assert compare.status_code == 200 and compare.text.count('class="run"') == 2
    assert c.get("/compare?run=000000000000").status_code == 404
    broken_id = re.search(r'class="broken" data-run="([0-9a-f]+)"', page.text).group(1)
    assert c.get(f"/explore/{broken_id}").status_code == 409
    assert c.get("/").status_code == 200  # still up


def test_pages_carry_a_content_security_policy(served_runs):
    reply = client(served_runs).get("/")
    assert "script-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_serve_listens_on_loopback_unless_told_and_then_warns(served_runs, monkeypatch):
    """uvicorn.run is replaced by a recorder: the command's choice of address and its
    warning are what is tested, without opening a port beyond loopback."""
    import uvicorn
    from conftest import run_cli

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    quiet = run_cli("serve", str(served_runs))
    loud = run_cli("serve", str(served_runs), "--host", "0.0.0.0", "--port", "8123")
    assert quiet.returncode == loud.returncode == 0
    assert [c["host"] for c in calls] == ["127.0.0.1", "0.0.0.0"] and calls[1]["port"] == 8123
    assert "warning" not in quiet.stderr
    assert "warning: listening on 0.0.0.0: other machines can reach this server" in loud.stderr
