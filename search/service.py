"""The HTTP service: a thin FastAPI layer over the same :class:`Searcher`, watches and timelines
the page and the CLI use. ``python -m search.serve`` runs it (see ``search/serve.py``).

Reads are open; writes (``POST /index/update``, creating and removing watches) need the token
set in ``POLYSEEK_API_TOKEN`` as ``Authorization: Bearer TOKEN``, compared in constant time; with
no token set, writes are refused. Each request is answered from the index version in service
when it arrives (:class:`search.follow.IndexFollower`)."""

from __future__ import annotations

import dataclasses
import hmac
import os
import threading
import time
import typing
import uuid
from dataclasses import asdict
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Literal, Optional

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, create_model

from index.watches import DEFAULT_THRESHOLD, MAX_WATCH_QUERY, Match, Watch, WatchStore
from polyseek.languages import language_codes
from polyseek import settings
from polyseek.errors import (IndexLockedError, IndexNotFoundError, PolyseekError, QueryError)
from search.follow import IndexFollower
from search.searcher import MAX_K, MAX_QUERY_CHARS, Hit, clean_query
from search.timeline import timeline as make_timeline

ENV_TOKEN = "POLYSEEK_API_TOKEN"
#: Largest request body accepted (a watch is a few hundred bytes).
MAX_BODY_BYTES = 64 * 1024
#: Jobs remembered for polling (the oldest finished ones are forgotten first).
MAX_JOBS = 100


# --- response models ----------------------------------------------------------------------------

def _hit_fields() -> dict:
    """search.Hit's fields as pydantic field definitions: the API's hit is the library's hit (one
    definition), with what only the API adds."""
    hints = typing.get_type_hints(Hit)
    return {f.name: (hints[f.name], ... if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(Hit)}


HitOut = create_model(
    "HitOut", **_hit_fields(),
    also_reported_in=(Optional[list["HitOut"]], Field(default=None, description="with also=K: the same story's "
                                                                               "passages in other languages")),
    story=(Optional[dict], Field(default=None, description="the hit's story (with story=true): its languages, size, "
                                                            "dates")))
HitOut.model_rebuild()


class SearchOut(BaseModel):
    query: str
    version: str = Field(description="the index version that answered")
    mode: str = Field(description="the mode the search ran in (auto resolved)")
    took_ms: float
    hits: list[HitOut]


class PassageOut(BaseModel):
    passage_id: int
    ordinal: int
    start: int
    end: int
    lang: str
    text: str


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    lang: str
    format: str
    url: str
    source: str
    date: str
    author: str
    text: str
    passages: list[PassageOut]
    version: str


class WatchIn(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_WATCH_QUERY)
    langs: list[str] = Field(default_factory=list, max_length=50)
    sources: list[str] = Field(default_factory=list, max_length=100)
    mode: Literal["auto", "dense", "hybrid"] = "auto"
    threshold: float | None = Field(default=None, ge=-100.0, le=100.0,
                                    description="standardized score to reach, in standard deviations of the "
                                                f"query's scores in the passage's language (default {DEFAULT_THRESHOLD})")


class WatchMatchesOut(BaseModel):
    watch: Watch
    matches: list[Match]


class JobOut(BaseModel):
    job: str
    status: Literal["running", "done", "failed"]
    started_at: str
    finished_at: str | None = None
    summary: dict | None = None
    error: str | None = None
    url: str


Langs = Annotated[list[str], Query(description="ISO 639-1 code; repeat (or comma-separate) for several")]
Sources = Annotated[list[str], Query(description="source or site name; repeatable")]


# --- the application ----------------------------------------------------------------------------

def create_app(index_dir=None, *, corpus_dir=None, token: str | None = None, cors_origins: list[str] | None = None,
               embedder=None) -> FastAPI:
    """The service over ``index_dir`` (default: ``$POLYSEEK_INDEX`` or ``.polyseek/index``).
    ``corpus_dir``: what ``POST /index/update`` reads (default: the index's own corpus).
    ``token``: the write token (default ``$POLYSEEK_API_TOKEN``; empty = writes refused).
    ``embedder``: the query model (tests; default: the manifest's model)."""
    index_dir = settings.index_dir(index_dir)
    token = os.environ.get(ENV_TOKEN, "") if token is None else token
    follower = IndexFollower(index_dir, embedder)
    watches = WatchStore(index_dir)
    jobs = _Jobs(index_dir, corpus_dir, embedder)

    # /docs and /redoc serve Swagger UI's and ReDoc's files from the fastapi-offline package, not
    # a CDN: the service works on machines without internet access.
    app = FastAPIOffline(title="Polyseek", version="1", max_body_size=MAX_BODY_BYTES,
                  description="Multilingual semantic search over news: search, documents, watches (saved searches "
                              "that alert) and timelines.")
    app.state.follower = follower
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])

    def require_token(request: Request) -> None:
        if not token:
            raise HTTPException(403, f"writes are disabled: start the service with {ENV_TOKEN} set to a secret, "
                                     "then send it as 'Authorization: Bearer TOKEN'")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HTTPException(401, "this request changes data: send the token as 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8")):
            raise HTTPException(401, "the token is wrong", headers={"WWW-Authenticate": "Bearer"})

    write = [Depends(require_token)]

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": [
            {"field": str(e["loc"][-1]) if e.get("loc") else "", "reason": e.get("msg", ""), "loc": list(e.get("loc", ()))}
            for e in exc.errors()]})

    @app.exception_handler(QueryError)
    async def bad_query(_request: Request, exc: QueryError):
        return JSONResponse(status_code=422, content={"detail": [{"field": _field_of(str(exc)), "reason": str(exc)}]})

    @app.exception_handler(IndexLockedError)
    async def locked(_request: Request, exc: IndexLockedError):
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(PolyseekError)
    async def unavailable(_request: Request, exc: PolyseekError):
        # No index, a damaged one, or its model cannot be loaded: the message says what to do.
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.get("/search", response_model=SearchOut)
    def search(q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="the query, any language")],
               k: Annotated[int, Query(ge=1, le=MAX_K)] = 10, lang: Langs = [],  # noqa: B006 (FastAPI copies it)
               mode: Literal["auto", "dense", "hybrid"] = "auto", per_document: bool = False, source: Sources = [],
               since: date | None = None, until: date | None = None, sort: Literal["relevance", "date"] = "relevance",
               also: Annotated[bool, Query(description="where each hit's story was reported in other languages")] = False,
               story: Annotated[bool, Query(description="each hit's story: size, languages, first report")] = False):
        langs = language_codes(lang) or None
        q = clean_query(q)  # as every path reads it
        with follower.searcher() as searcher:
            started = time.perf_counter()
            qvec = searcher.encode_query(q)
            resolved = searcher.resolve_mode(mode, q, langs)
            hits = searcher.search_vector(qvec, k, langs, per_document=per_document, mode=resolved, query=q,
                                          sources=source or None, since=_iso(since), until=_iso(until), sort=sort)
            out = [_hit(h, searcher.same_story(h) if also else None) for h in hits]
            if story:
                found = searcher.stories_by_id({h.story_id for h in hits if h.story_id})
                for hit_out in out:
                    hit_out.story = found[hit_out.story_id].to_dict() if hit_out.story_id in found else None
            took = (time.perf_counter() - started) * 1000
            return SearchOut(query=q, version=searcher.folder.name, mode=resolved, took_ms=round(took, 2), hits=out)

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut)
    def document(doc_id: str):
        with follower.searcher() as searcher:
            found = searcher.document(doc_id)
            if found is None:
                raise HTTPException(404, f"no document {doc_id!r} in the index (version {searcher.folder.name}); "
                                         "doc_id is the file's path in the corpus, as search hits give it")
            doc, passages = found
            return DocumentOut(doc_id=doc.doc_id, title=doc.title, lang=doc.lang, format=doc.format, url=doc.url,
                               source=doc.source, date=doc.published, author=doc.author, text=doc.text,
                               passages=[PassageOut(passage_id=p.passage_id, ordinal=p.ordinal, start=p.start,
                                                    end=p.end, lang=p.lang, text=p.text) for p in passages],
                               version=searcher.folder.name)

    @app.get("/stories")
    def stories(lang: Langs = [], source: Sources = [], since: date | None = None,  # noqa: B006
                until: date | None = None, sort: Literal["size", "date"] = "size",
                limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
                min_size: Annotated[int, Query(ge=1, description="2: only stories more than one document reported")] = 1):
        with follower.searcher() as searcher:
            found = searcher.stories(language_codes(lang) or None, source or None, _iso(since), _iso(until), sort,
                                     limit, min_size)
            return {"stories": [s.to_dict() for s in found], "version": searcher.folder.name}

    @app.get("/stories/{story_id}")
    def story_detail(story_id: str):
        with follower.searcher() as searcher:
            found = searcher.story(story_id)
            if found is None:
                raise HTTPException(404, f"no story {story_id!r} in the index (version {searcher.folder.name}): "
                                         "GET /stories lists them")
            return {**found.to_dict(), "version": searcher.folder.name}

    @app.get("/index")
    def index_info():
        with follower.searcher() as searcher:
            m = searcher.manifest
            return {"version": searcher.folder.name, "model": m.model, "documents": m.documents,
                    "passages": m.passages, "languages": m.languages, "built_at": m.built_at,
                    "vector_index": m.vector_index, "lexical": searcher.has_lexical, "corpus": m.corpus,
                    "sources": searcher.sources, "dates": list(searcher.date_range or []) or None}

    @app.get("/healthz")
    def healthz():
        try:
            with follower.searcher() as searcher:
                return {"status": "ok", "index": searcher.folder.name}
        except PolyseekError as exc:
            return {"status": "ok", "index": None, "problem": str(exc)}

    @app.post("/index/update", response_model=JobOut, status_code=202, dependencies=write)
    def update():
        return jobs.start()

    @app.get("/jobs/{job_id}", response_model=JobOut)
    def job(job_id: str):
        found = jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}: jobs are kept while the service runs (the last {MAX_JOBS})")
        return found

    @app.get("/watches")
    def list_watches() -> dict[str, list[Watch]]:
        return {"watches": watches.list()}

    @app.post("/watches", response_model=Watch, status_code=201, dependencies=write)
    def add_watch(watch: Annotated[WatchIn, Body()]):
        return watches.add(watch.query, watch.langs, watch.sources, watch.mode, watch.threshold)

    @app.get("/watches/{watch_id}", response_model=Watch)
    def get_watch(watch_id: int):
        return _watch_or_404(watches, watch_id)

    @app.delete("/watches/{watch_id}", status_code=204, dependencies=write)
    def remove_watch(watch_id: int):
        if not watches.remove(watch_id):
            raise HTTPException(404, f"no watch {watch_id}: GET /watches lists them")
        return Response(status_code=204)

    @app.get("/watches/{watch_id}/matches", response_model=WatchMatchesOut)
    def watch_matches(watch_id: int, since: Annotated[str | None, Query(description="found on or after (ISO date or time)")] = None,
                      new: Annotated[bool, Query(description="only matches not yet marked seen")] = False,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 1000):
        return {"watch": _watch_or_404(watches, watch_id), "matches": watches.matches(watch_id, since, new, limit)}

    @app.post("/watches/{watch_id}/seen", response_model=Watch, dependencies=write)
    def watch_seen(watch_id: int):
        _watch_or_404(watches, watch_id)
        watches.mark_seen(watch_id)
        return watches.get(watch_id)

    @app.get("/timeline")
    def timeline(q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)], lang: Langs = [],  # noqa: B006
                 source: Sources = [], since: date | None = None, until: date | None = None,  # noqa: B006
                 interval: Literal["day", "week"] = "day",
                 threshold: Annotated[float, Query(ge=-100.0, le=100.0)] = DEFAULT_THRESHOLD) -> dict:
        with follower.searcher() as searcher:
            found = make_timeline(searcher, q, language_codes(lang) or None, interval=interval,
                                  sources=source or None, since=_iso(since), until=_iso(until), threshold=threshold)
            return {**found.to_dict(), "version": searcher.folder.name}

    return app


def _hit(hit: Hit, also: list[Hit] | None) -> HitOut:
    return HitOut(**hit.to_dict(), also_reported_in=None if also is None else [HitOut(**h.to_dict()) for h in also])


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _watch_or_404(watches: WatchStore, watch_id: int):
    found = watches.get(watch_id)
    if found is None:
        raise HTTPException(404, f"no watch {watch_id}: GET /watches lists them")
    return found


def _field_of(message: str) -> str:
    """The parameter a QueryError is about, from its first words (they name the value)."""
    first = message.split(" ", 1)[0].lower()
    return {"language": "lang", "since": "since", "until": "until", "k": "k", "sort": "sort", "search": "mode",
            "watch": "mode", "interval": "interval", "threshold": "threshold"}.get(first, "q")


class _Jobs:
    """Index updates run one at a time in a background thread; each is a job to poll."""

    def __init__(self, index_dir: Path, corpus_dir, embedder):
        self.index_dir, self.corpus_dir, self.embedder = index_dir, corpus_dir, embedder
        self._jobs: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._running: str | None = None

    def start(self) -> dict:
        with self._lock:
            if self._running is not None:
                raise HTTPException(409, {"reason": "an update is already running: poll it, then ask again",
                                          "job": self._running, "url": f"/jobs/{self._running}"})
            job_id = uuid.uuid4().hex[:12]
            self._jobs[job_id] = {"job": job_id, "status": "running", "started_at": _now(), "url": f"/jobs/{job_id}"}
            self._running = job_id
            while len(self._jobs) > MAX_JOBS:
                oldest = next(j for j in self._jobs if j != job_id)
                del self._jobs[oldest]
            snapshot = dict(self._jobs[job_id])
        threading.Thread(target=self._run, args=(job_id,), name=f"update-{job_id}", daemon=True).start()
        return snapshot

    def _run(self, job_id: str) -> None:
        from index.builder import update_index

        result: dict = {}
        try:
            summary = update_index(self.corpus_dir, self.index_dir, embedder=self.embedder)
            result = {"status": "done", "summary": {**asdict(summary), "text": summary.to_text()}}
        except Exception as exc:  # the index in service is untouched; the job says why
            reason = str(exc) if isinstance(exc, PolyseekError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, IndexNotFoundError) and self.corpus_dir is None:
                reason += " (or start the service with --corpus DIR)"
            result = {"status": "failed", "error": reason}
        finally:
            with self._lock:
                self._jobs.get(job_id, {}).update(result or {"status": "failed", "error": "interrupted"},
                                                   finished_at=_now())
                self._running = None

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            found = self._jobs.get(job_id)
            return dict(found) if found else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
