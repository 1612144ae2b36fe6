from __future__ import annotations

import os
from pathlib import Path

import pytest

from polyseek.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _no_env_leaks(monkeypatch):
    """Tests never read the user's index or model settings."""
    for var in ("POLYSEEK_INDEX", "POLYSEEK_MODEL", "POLYSEEK_CORPUS", "POLYSEEK_FIELDS", "POLYSEEK_BACKEND",
                "POLYSEEK_MAX_BYTES", "POLYSEEK_MAX_CHARS", "POLYSEEK_MAX_PASSAGES", "POLYSEEK_READ_SECONDS",
                "POLYSEEK_READ_MEMORY_MB"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake():
    return HashingEmbedder(dim=64, max_tokens=128)


@pytest.fixture
def corpus(tmp_path):
    """A small multilingual corpus in several scripts."""
    root = tmp_path / "corpus"
    root.mkdir()
    files = {
        "en/missiles.txt": "Missile defense in Europe.\nNATO says the missile shield does not threaten Russia. "
                           "Moscow wants legally binding guarantees about the missile shield.",
        "en/weather.md": "# Weather report\n\nRain is expected in Bucharest on Monday. The sun returns on Friday.",
        "ro/deveselu.txt": "Baza de la Deveselu găzduiește scutul antirachetă. Rusia cere garanţii de securitate "
                           "din partea NATO şi a SUA privind scutul antirachetă.",
        "ar/start.txt": "قال المتحدث باسم الكرملين إن روسيا والولايات المتحدة اتفقتا على ضرورة تمديد معاهدة ستارت. "
                        "وأضاف أن الحوار بين البلدين سيستمر حول الاستقرار الاستراتيجي والأمن.",
        "zh/news.txt": "北约秘书长表示，欧洲导弹防御系统不会威胁俄罗斯。俄罗斯要求具有法律约束力的保证。",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def corpus_searcher(corpus, tmp_path, fake):
    """``corpus_searcher(chunk_tokens)``: the ``corpus`` fixture built with the hashing model into
    ``tmp_path/index`` and opened (closed at teardown)."""
    from index import build_index
    from search import Searcher

    opened = []

    def open_index(chunk_tokens: int):
        build_index(corpus, tmp_path / "index", embedder=fake, chunk_tokens=chunk_tokens)
        opened.append(Searcher.open(tmp_path / "index", embedder=fake))
        return opened[-1]

    yield open_index
    for searcher in opened:
        searcher.close()


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled model (converted once into the cache: ~15 s the first time on a machine)."""
    from polyseek.embedder import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, real_embedder):
    from index import build_index

    path = tmp_path_factory.mktemp("seed") / "index"
    build_index(DATA, path, embedder=real_embedder)
    return path


def have_compiler() -> bool:
    return any(os.access(os.path.join(d, "gcc"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep))
