"""`deepgen serve`: one ASGI application (FastAPI) for the run dashboard, the latent
explorer and human studies. Pages are rendered on the server (Jinja2); a little plain
JavaScript in ``static/`` drives the explorer and the rating page.

Every POST carries the page session's token (``X-Session``, ``X-Token``) or, for a
judgement, the rater's; bodies are limited to :data:`~deepgen.serve.security.MAX_BODY`
bytes and requests by rate (:data:`~deepgen.serve.security.LIMITS`); files are served only
from inside the served run and study folders.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, DeepgenError
from ..report import run_curves
from . import dashboard
from .explorer import Explorer, data_url
from .security import BodyLimit, RateLimiter, Sessions, file_under
from .store import Refused, Study

HERE = Path(__file__).parent
SLIDERS = 8  # latent coordinates given a slider, the most influential first
MANIFOLD_CELLS = 15  # cells per side of a 2-D latent's clickable map, over [-3, 3]


class Judgement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: str = Field(min_length=1, max_length=64)
    position: int = Field(ge=0, le=100_000)
    image: str = Field(min_length=1, max_length=64)
    answer: Literal["real", "fake"]
    response_ms: float = Field(ge=0, lt=86_400_000)


class DecodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codes: list[list[float]] = Field(min_length=1, max_length=64)
    label: int | None = None


def _refused(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(paths: list[Path], device: str = "auto", limits: dict | None = None):
    """The application serving ``paths`` (run folders, study folders, or folders holding
    them). ``limits``: rate limits by kind (see :data:`deepgen.serve.security.LIMITS`).

    Returns: an ASGI application (FastAPI wrapped in the body limit)."""
    served = dashboard.Served(paths)
    sessions, limiter = Sessions(), RateLimiter(limits)
    explorers: dict[str, Explorer] = {}
    opened: dict[str, Study] = {}
    loading = threading.Lock()
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app):
        yield
        for s in opened.values():
            s.close()

    app = FastAPI(
        title="deepgen", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        client = request.client.host if request.client else "?"
        if not limiter.allow("request", client):
            return _refused(429, "too many requests; slow down")
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        session, token = sessions.issue()
        context |= {"session": session, "token": token}
        return templates.TemplateResponse(request, name, context, status_code=status)

    def check_session(session: str | None, token: str | None) -> None:
        if not sessions.valid(session, token):
            raise Refused(403, "missing or forged session token; reload the page")

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused):
        return _refused(err.status, str(err))

    # --- dashboard ------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        rows = [dashboard.row(p) for p in served.runs().values()]
        studies = sorted(served.studies())
        return page(request, "dashboard.html", rows=rows, studies=studies, Markup=Markup)

    @app.get("/compare", response_class=HTMLResponse)
    def compare(request: Request, run: Annotated[list[str], Query(max_length=12)] = ()):
        runs = served.runs()
        unknown = [r for r in run if r not in runs]
        if unknown or not run:
            return page(request, "message.html", 404, message="choose runs from the dashboard")
        shown = [(dashboard.row(runs[r]), run_curves(runs[r])) for r in run]
        return page(request, "compare.html", shown=shown, Markup=Markup)

    @app.get("/runs/{rid}/files/{relative:path}")
    def run_file(rid: str, relative: str):
        runs = served.runs()
        path = file_under(runs[rid], relative) if rid in runs else None
        if path is None:
            return _refused(404, "no such file")
        return FileResponse(path)

    # --- latent explorer ------------------------------------------------------------------
    def explorer(rid: str) -> Explorer:
        """The run's explorer, loaded on first use and kept (the folders are searched only
        then, not on every decode)."""
        if rid in explorers:
            return explorers[rid]
        runs = served.runs()
        if rid not in runs:
            raise Refused(404, "no such run")
        with loading:
            if rid not in explorers:
                try:
                    explorers[rid] = Explorer(runs[rid], device)
                except DeepgenError as err:
                    raise Refused(409, str(err)) from None
            return explorers[rid]

    @app.get("/explore/{rid}", response_class=HTMLResponse)
    def explore(request: Request, rid: str):
        try:
            ex = explorer(rid)
        except Refused as err:
            return page(request, "message.html", err.status, message=str(err))
        dims = ex.influence()[:SLIDERS]
        return page(
            request,
            "explore.html",
            rid=rid,
            run=ex.run.name,
            dims=dims,
            latent_dim=ex.latent_dim,
            num_classes=ex.num_classes,
            can_encode=ex.can_encode,
            manifold=ex.latent_dim == 2,
            cells=MANIFOLD_CELLS,
        )

    @app.post("/api/explore/{rid}/decode")
    def decode(
        rid: str,
        body: DecodeRequest,
        x_session: Annotated[str | None, Header(max_length=64)] = None,
        x_token: Annotated[str | None, Header(max_length=128)] = None,
    ):
        check_session(x_session, x_token)
        if not limiter.allow("decode", x_session):
            return _refused(429, "too many decodes; slow down")
        try:
            pngs = explorer(rid).decode_png(body.codes, body.label)
        except ConfigError as err:
            return _refused(422, str(err))
        return {"images": [data_url(p) for p in pngs]}

    @app.get("/api/explore/{rid}/test-codes")
    def test_codes(rid: str, count: Annotated[int, Query(ge=1, le=16)] = 2, seed: int = 0):
        ex = explorer(rid)
        if not ex.can_encode:
            return _refused(409, "this model has no encoder")
        try:
            codes, labels = ex.test_codes(count, seed)
        except DeepgenError as err:
            return _refused(409, str(err))
        return {"codes": codes, "labels": labels}

    @app.get("/api/explore/{rid}/manifold.png")
    def manifold_map(rid: str):
        try:
            png = explorer(rid).manifold_png(MANIFOLD_CELLS)
        except ConfigError as err:
            return _refused(409, str(err))
        return Response(png, media_type="image/png")

    # --- human studies --------------------------------------------------------------------
    def study(name: str) -> Study:
        """The study of that name, opened on first use and kept with its connections (the
        folders are searched only then, not on every judgement)."""
        if name in opened:
            return opened[name]
        path = served.studies().get(name)
        if path is None:
            raise Refused(404, "no such study")
        with loading:
            if name not in opened:
                try:
                    opened[name] = Study(path)
                except DeepgenError as err:
                    raise Refused(409, str(err)) from None
            return opened[name]

    @app.get("/study/{name}", response_class=HTMLResponse)
    def study_page(request: Request, name: str):
        try:
            s = study(name)
        except Refused as err:
            return page(request, "message.html", err.status, message=str(err))
        return page(
            request,
            "study.html",
            study=s.name,
            meta=s.meta,
        )

    @app.get("/study/{name}/images/{image}.png")
    def study_image(name: str, image: str):
        return FileResponse(study(name).image_path(image), media_type="image/png")

    @app.post("/api/study/{name}/raters")
    def start_rater(
        request: Request,
        name: str,
        x_session: Annotated[str | None, Header(max_length=64)] = None,
        x_token: Annotated[str | None, Header(max_length=128)] = None,
    ):
        check_session(x_session, x_token)
        s = study(name)
        if not limiter.allow("rater", request.client.host if request.client else "?"):
            return _refused(429, "too many new raters from this address; try later")
        rater, token = s.start_rater()
        return {"rater": rater, "token": token}

    def next_payload(s: Study, rater: str, token: str) -> dict:
        item, done, total = s.next_item(rater, token)
        out = {"done": done, "total": total, "finished": item is None}
        if item is not None:
            out |= {"position": item.position, "image": item.image, "tutorial": item.tutorial}
        return out

    @app.get("/api/study/{name}/next")
    def next_image(
        name: str,
        x_rater: Annotated[str, Header(max_length=64)],
        x_token: Annotated[str, Header(max_length=128)],
    ):
        return next_payload(study(name), x_rater, x_token)

    @app.post("/api/study/{name}/judgements")
    def judge(name: str, body: Judgement, x_token: Annotated[str, Header(max_length=128)]):
        s = study(name)
        if not limiter.allow("judgement", body.rater):
            return _refused(429, "answers are coming too fast; slow down")
        feedback = s.record(
            body.rater, x_token, body.position, body.image, body.answer, body.response_ms
        )
        return {"stored": True, "feedback": feedback, "next": next_payload(s, body.rater, x_token)}

    return BodyLimit(app)
