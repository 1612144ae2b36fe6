"""The HTTP service: a real uvicorn process on 127.0.0.1 driven by httpx, and FastAPI's TestClient
for the rest (errors, tokens, watches, jobs, limits, CORS, following the index in service)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from index import build_index, update_index
from search.follow import IndexFollower
from search.searcher import MAX_QUERY_CHARS
from search.service import MAX_BODY_BYTES, create_app
from tests.conftest import ROOT

TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECORDS = [
    {"id": "r1", "title": "Shield talks", "lang": "en", "source": "Agerpres", "date": "2026-11-02",
     "text": "Moscow wants legally binding guarantees about the missile shield in Romania."},
    {"id": "r2", "title": "Scutul", "lang": "ro", "source": "Agerpres", "date": "2026-11-03",
     "text": "Moscova cere garanţii privind scutul antirachetă de la Deveselu."},
    {"id": "r3", "title": "Weather", "lang": "en", "source": "Meteo", "date": "2026-11-09",
     "text": "Rain is expected in Bucharest on Monday and the sun returns on Friday."},
]


@pytest.fixture
def site(tmp_path, corpus, fake):
    (corpus / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS),
                                       encoding="utf-8")
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=32)
    return index_dir, corpus


@pytest.fixture
def client(site, fake):
    index_dir, corpus = site
    app = create_app(index_dir, corpus_dir=corpus, token=TOKEN, embedder=fake)
    with TestClient(app) as c:
        yield c
    app.state.follower.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_job(get, url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(url).json()
        if job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {url} still running after {timeout} s")


def test_real_server_search_errors_token_and_update(site, tmp_path):
    index_dir, corpus = site
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POLYSEEK_API_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "search.serve", "--index", str(index_dir), "--corpus", str(corpus),
                               "--port", str(port), "--log-level", "warning"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "the server did not start in 60 s"
                time.sleep(0.1)

            # Search with filters: languages, source, dates.
            found = http.get("/search", params={"q": "missile shield guarantees", "lang": ["ro", "en"], "k": 20}).json()
            assert found["hits"] and {h["lang"] for h in found["hits"]} <= {"ro", "en"}
            assert {"ro", "en"} <= {h["lang"] for h in found["hits"]}
            agerpres = http.get("/search", params={"q": "guarantees", "source": "Agerpres", "since": "2026-11-03"}).json()
            assert [h["doc_id"].rsplit("#", 1)[-1] for h in agerpres["hits"]] == ["r2"]
            version = found["version"]

            bad = http.get("/search", params={"q": "missile", "k": 0})
            assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "k"
            assert http.get("/documents/no/such.txt").status_code == 404
            refused = http.post("/index/update")
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"

            # An update through the API; the next search sees the new document.
            (corpus / "de.txt").write_text("Die Bundeswehr übt mit Panzerhaubitzen in Litauen.", encoding="utf-8")
            started = http.post("/index/update", headers=AUTH)
            assert started.status_code == 202, started.text
            job = wait_for_job(http.get, started.json()["url"])
            assert job["status"] == "done", job
            assert job["summary"]["embedded"] >= 1 and job["summary"]["version"] != version
            after = http.get("/search", params={"q": "Panzerhaubitzen Litauen", "k": 1}).json()
            assert after["hits"][0]["doc_id"] == "de.txt" and after["version"] == job["summary"]["version"]
            assert http.get("/documents/de.txt").json()["passages"][0]["text"].startswith("Die Bundeswehr")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_search_returns_hit_fields_and_also(client):
    body = client.get("/search", params={"q": "missile shield", "k": 3, "also": "true", "per_document": "true"}).json()
    hit = body["hits"][0]
    assert set(hit) >= {"passage_id", "doc_id", "title", "lang", "text", "score", "start", "end", "cosine", "url",
                        "source", "date", "page", "also_reported_in"}
    assert isinstance(hit["also_reported_in"], list) and body["mode"] == "dense" and body["took_ms"] >= 0
    assert len({h["doc_id"] for h in body["hits"]}) == len(body["hits"])
    plain = client.get("/search", params={"q": "missile shield"}).json()["hits"][0]
    assert plain["also_reported_in"] is None
    hybrid = client.get("/search", params={"q": "missile shield", "lang": "en", "mode": "auto"}).json()
    assert hybrid["mode"] == "hybrid"
    by_date = client.get("/search", params={"q": "guarantees", "sort": "date", "k": 20}).json()["hits"]
    dates = [h["date"] for h in by_date if h["date"]]
    assert dates == sorted(dates, reverse=True) and len(dates) == 3


@pytest.mark.parametrize("params, field", [
    ({"q": "x", "k": 1001}, "k"), ({"q": "x", "k": "ten"}, "k"), ({"q": "x", "mode": "fast"}, "mode"),
    ({"q": "x", "sort": "size"}, "sort"), ({"q": "x", "since": "yesterday"}, "since"), ({"q": "x", "lang": "e1"}, "lang"),
    ({"q": "   "}, "q"), ({}, "q"), ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
])
def test_bad_parameters_give_422_with_field_and_reason(client, params, field):
    response = client.get("/search", params=params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["field"] == field and detail["reason"]


def test_documents_index_and_health(client, site):
    doc = client.get("/documents/en/missiles.txt").json()
    assert doc["lang"] == "en" and doc["text"].startswith("Missile defense") and doc["passages"]
    assert all(doc["text"][p["start"]:p["end"]] for p in doc["passages"])
    missing = client.get("/documents/en/nothing.txt")
    assert missing.status_code == 404 and "nothing.txt" in missing.json()["detail"]
    info = client.get("/index").json()
    assert info["model"] == "fake:64" and {"en", "ro", "ar", "zh"} <= set(info["languages"])
    assert info["sources"] == {"Agerpres": 2, "Meteo": 1} and info["dates"][0].startswith("2026-11-02")
    assert client.get("/healthz").json() == {"status": "ok", "index": info["version"]}
    assert client.get("/openapi.json").json()["paths"]["/search"]


def test_no_index_gives_503_with_how_to_build(tmp_path, fake):
    with TestClient(create_app(tmp_path / "none", token=TOKEN, embedder=fake)) as c:
        response = c.get("/search", params={"q": "x"})
        assert response.status_code == 503 and "python -m index build" in response.json()["detail"]
        assert c.get("/healthz").json()["index"] is None


def test_writes_need_the_token(site, fake):
    index_dir, corpus = site
    with TestClient(create_app(index_dir, token="", embedder=fake)) as closed:
        refused = closed.post("/watches", json={"query": "x"}, headers=AUTH)
        assert refused.status_code == 403 and "POLYSEEK_API_TOKEN" in refused.json()["detail"]
    with TestClient(create_app(index_dir, token=TOKEN, embedder=fake)) as c:
        assert c.post("/watches", json={"query": "x"}).status_code == 401
        assert c.post("/watches", json={"query": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/watches", json={"query": "x"}, headers={"Authorization": TOKEN}).status_code == 401
        assert c.delete("/watches/1").status_code == 401
        assert c.post("/watches", json={"query": "x"}, headers=AUTH).status_code == 201


def test_watches_through_the_api(client, site, fake):
    index_dir, corpus = site
    created = client.post("/watches", json={"query": "Panzerhaubitzen Litauen", "langs": ["de"], "threshold": 0.1},
                          headers=AUTH)
    assert created.status_code == 201, created.text
    watch = created.json()
    assert watch["langs"] == ["de"] and watch["new"] == 0
    assert client.post("/watches", json={"query": "x", "mode": "fast"}, headers=AUTH).json()["detail"][0]["field"] == "mode"
    assert client.post("/watches", json={"query": "x", "langs": ["deutsch"]}, headers=AUTH).status_code == 422
    (corpus / "de.txt").write_text("Die Bundeswehr übt mit Panzerhaubitzen in Litauen.", encoding="utf-8")
    job = wait_for_job(client.get, client.post("/index/update", headers=AUTH).json()["url"])
    assert job["status"] == "done" and job["summary"]["watch_matches"] == 1
    listed = client.get("/watches").json()["watches"]
    assert [(w["watch_id"], w["new"], w["matches"]) for w in listed] == [(watch["watch_id"], 1, 1)]
    matches = client.get(f"/watches/{watch['watch_id']}/matches").json()["matches"]
    assert [m["doc_id"] for m in matches] == ["de.txt"] and matches[0]["found_at"]
    assert client.get(f"/watches/{watch['watch_id']}/matches", params={"since": "2999-01-01"}).json()["matches"] == []
    assert client.post(f"/watches/{watch['watch_id']}/seen", headers=AUTH).json()["new"] == 0
    assert client.get(f"/watches/{watch['watch_id']}/matches", params={"new": True}).json()["matches"] == []
    assert client.get("/watches/999").status_code == 404
    assert client.get("/watches/999/matches").status_code == 404
    assert client.delete(f"/watches/{watch['watch_id']}", headers=AUTH).status_code == 204
    assert client.delete(f"/watches/{watch['watch_id']}", headers=AUTH).status_code == 404


def test_one_update_at_a_time_and_failures_are_reported(client, monkeypatch):
    import index.builder

    release = threading.Event()
    monkeypatch.setattr(index.builder, "update_index", lambda *a, **k: release.wait(30) and 1 / 0)
    first = client.post("/index/update", headers=AUTH).json()
    busy = client.post("/index/update", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["detail"]["job"] == first["job"]
    release.set()
    job = wait_for_job(client.get, first["url"])
    assert job["status"] == "failed" and "ZeroDivisionError" in job["error"]
    assert client.get("/jobs/unknown").status_code == 404


def test_limits_and_cors(site, fake):
    index_dir, _ = site
    with TestClient(create_app(index_dir, token=TOKEN, embedder=fake)) as c:
        big = c.post("/watches", content=b"{" + b" " * MAX_BODY_BYTES + b"}", headers={**AUTH, "Content-Type": "application/json"})
        assert big.status_code == 413
        preflight = c.options("/search", headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers
    with TestClient(create_app(index_dir, token=TOKEN, embedder=fake, cors_origins=["https://example.org"])) as c:
        response = c.get("/healthz", headers={"Origin": "https://example.org"})
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        other = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_timeline_through_the_api(client):
    body = client.get("/timeline", params={"q": "guarantees missile shield", "threshold": -100}).json()
    assert body["interval"] == "day" and body["periods"][0] == "2026-11-02" and body["periods"][-1] == "2026-11-09"
    assert len(body["periods"]) == 8  # every day from the first to the last
    assert sum(body["counts"]["en"]) == 2 and sum(body["counts"]["ro"]) == 1
    assert body["undated"]["en"] == 2 and body["undated"]["ar"] == 1
    weekly = client.get("/timeline", params={"q": "guarantees", "interval": "week", "threshold": -100,
                                             "lang": "en"}).json()
    assert weekly["periods"] == ["2026-11-02", "2026-11-09"] and weekly["counts"] == {"en": [1, 1]}
    assert client.get("/timeline", params={"q": "x", "interval": "year"}).status_code == 422


def test_follower_serves_new_versions_and_finishes_old_requests(site, fake):
    index_dir, corpus = site
    follower = IndexFollower(index_dir, fake)
    with follower.searcher() as old:
        old_version = old.folder
        (corpus / "de.txt").write_text("Die Bundeswehr übt mit Panzerhaubitzen in Litauen.", encoding="utf-8")
        update_index(corpus, index_dir, embedder=fake)
        with follower.searcher() as new:
            assert new.folder != old_version
            assert new.search("Panzerhaubitzen", k=1)[0].doc_id == "de.txt"
        # The request that started on the old version finishes on it.
        assert old.search("Panzerhaubitzen Litauen", k=20) and all(h.doc_id != "de.txt" for h in old.search("Panzerhaubitzen", k=20))
    with pytest.raises(Exception):
        old.search("missile", k=1)  # closed once its last request was done
    with follower.searcher() as again:
        assert again is new
    follower.close()


def test_timeline_cli_matches_the_api(client, site, capsys):
    from search.cli import main as cli

    index_dir, _ = site
    assert cli(["guarantees missile shield", "--index", str(index_dir), "--timeline", "--threshold", "-100",
                "--interval", "week", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    api = client.get("/timeline", params={"q": "guarantees missile shield", "threshold": -100, "interval": "week"}).json()
    assert printed == {k: v for k, v in api.items() if k != "version"}
    assert cli(["guarantees missile shield", "--index", str(index_dir), "--timeline", "--threshold", "-100"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["period", *api["counts"]]
    assert table[2].split()[0] == "2026-11-02" and table[-1].split()[0] == "undated"


def test_stories_through_the_api(client):
    listed = client.get("/stories").json()["stories"]
    assert listed and all({"story_id", "title", "size", "languages"} <= set(s) for s in listed)
    opened = client.get(f"/stories/{listed[0]['story_id']}").json()
    assert opened["story"]["story_id"] == listed[0]["story_id"] and len(opened["documents"]) == listed[0]["size"]
    assert client.get("/stories/no-such-story").status_code == 404
    assert client.get("/stories", params={"sort": "colour"}).json()["detail"][0]["field"] == "sort"
    hits = client.get("/search", params={"q": "missile shield", "story": "true"}).json()["hits"]
    assert all(h["story"]["story_id"] == h["story_id"] for h in hits if h["story_id"])
    assert any(h["story"] for h in hits)
    assert client.get("/search", params={"q": "missile shield"}).json()["hits"][0]["story"] is None


def test_watch_responses_are_the_dataclasses_schema_included(client):
    """The service serves index.watches' Watch and Match as they are: the OpenAPI schema names
    each of their fields, and a served watch carries exactly those."""
    from dataclasses import fields

    from index.watches import Match, Watch

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for cls in (Watch, Match):
        assert set(schemas[cls.__name__]["properties"]) == {f.name for f in fields(cls)}
    created = client.post("/watches", json={"query": "x"}, headers=AUTH).json()
    assert set(created) == {f.name for f in fields(Watch)}
    assert set(client.get(f"/watches/{created['watch_id']}/matches").json()) == {"watch", "matches"}


def test_the_api_documentation_pages_load_nothing_from_the_internet(client):
    """/docs and /redoc work on a machine without internet access: every script and style sheet
    they name is served by the service itself."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200, page
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
        for asset in assets:
            got = client.get(asset)
            assert got.status_code == 200 and len(got.content) > 100, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "Polyseek"
