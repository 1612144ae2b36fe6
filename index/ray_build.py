"""Building on a Ray cluster: the same build, with its reading, chunking and embedding spread over
Ray workers, and its segments written by them (``python -m index build CORPUS --ray local|auto``).

The driver (the process that runs ``build_index``/``update_index``) keeps every decision of a
local build — which files changed, which documents are indexed, passage ids, deletions — and
hands the work to Ray (``pip install 'polyseek[ray]'``):

* reading, language identification and chunking: Ray Data tasks over the changed files
  (:func:`_read_file_task`), then over their documents, spread into many blocks so one large
  JSONL/CSV export is chunked by every worker, not one;
* embedding: a Ray Data actor pool (:class:`EmbedActor`), one model per actor loaded once
  (``load_embedder``: the bundled model is converted from the installed package on each node,
  never fetched from a hub; on GPU actors torch computes in float16 as the local GPU path does),
  its fingerprint checked against the driver's;
* writing: one Ray task per segment (:func:`_write_segment_task`), a segment holding up to
  :data:`SEGMENT_PASSAGES` passages; a segment above the exact-search size trains its IVF cells
  once on a sample and its vectors are added by Ray tasks to copies of the trained index, merged
  in order (index.vectors.add_in_shards).

The driver then publishes the segments as one version, with the same manifest, checksums and
writer lock as a local build (index.commit). Ray retries a task whose worker died (Ray Data's
tasks 3 times, the segment tasks ``max_retries`` times) and restarts a dead actor, resubmitting
its batches; a build that fails anyway raises
:class:`ClusterBuildError` and leaves the version in service untouched. Workers write into the
index folder: on a cluster of several machines it must be on storage they all mount.

Nothing here is imported unless a build asks for Ray.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from index.balance import language_means
from index.catalog import Entry
from index.limits import Limits
from index.manifest import SEGMENTS
from index.store import DocumentRow, PassageRow
from polyseek.errors import PolyseekError

log = logging.getLogger(__name__)

#: Passages per segment the workers write. A segment is one shard of the searcher (each one's
#: FAISS index is searched and the rankings merged), so few large ones search fastest; at 10M
#: passages a segment's IVF has 65,536 cells with an HNSW quantizer (index.vectors).
SEGMENT_PASSAGES = 10_000_000
#: Vectors per Ray task when a large segment's IVF index is filled in shards.
SHARD_ROWS = 1_000_000
#: Texts per actor call (each call embeds them in the encoder's own batches).
EMBED_ROWS = 256
#: Ray's retries of a segment-writing task whose worker died (an error the code raises is not
#: retried: it fails the build).
MAX_RETRIES = 3


class ClusterBuildError(PolyseekError):
    """A build on Ray failed: no cluster to join, a worker's error, or a model that differs between nodes."""


def connect(address: str = "local", **init_kwargs) -> bool:
    """Connect this process to Ray: ``"local"`` starts an instance on this machine (all its
    cores and GPUs unless ``init_kwargs`` say otherwise); ``"auto"`` joins the running cluster
    (``ray start --head`` on this machine, or ``RAY_ADDRESS``); anything else is a cluster
    address (``HOST:6379``, ``ray://HOST:10001``). Returns whether this call started Ray
    (False when the process was already connected)."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterBuildError("--ray needs Ray: pip install 'polyseek[ray]' (or make install EXTRAS=ray)") from exc
    if ray.is_initialized():
        return False
    init_kwargs.setdefault("include_dashboard", False)
    init_kwargs.setdefault("logging_level", logging.WARNING)
    # Workers' own output stays in Ray's logs (/tmp/ray/session_latest/logs); a worker's error
    # reaches the driver as the build's error all the same.
    init_kwargs.setdefault("log_to_driver", False)
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = ("start one with `ray start --head` (then `ray start --address=HEAD:6379` on the other machines) "
                "or set RAY_ADDRESS, or build with --ray local") if address != "local" else "see Ray's error above"
        raise ClusterBuildError(f"could not connect to Ray at {address!r} ({type(exc).__name__}: {exc}): {hint}") from exc
    return True


class RayExecutor:
    """Where ``build_index``/``update_index`` run their reading, chunking, embedding and segment
    writing when given ``executor=RayExecutor(...)``. ``actors``: embedding actors (default: one
    per GPU of the cluster, else one per ``cpus_per_actor`` CPUs); ``gpus_per_actor`` (default 1
    when the cluster has GPUs, else 0); ``segment_passages``: the most passages of one segment."""

    def __init__(self, address: str = "local", *, actors: int | None = None, cpus_per_actor: float = 1.0,
                 gpus_per_actor: float | None = None, segment_passages: int = SEGMENT_PASSAGES,
                 max_retries: int = MAX_RETRIES, **init_kwargs):
        if actors is not None and actors < 1:
            raise ValueError(f"{actors} embedding actors: use at least 1")
        if segment_passages < 1:
            raise ValueError(f"segment size of {segment_passages} passages: use at least 1")
        self.address, self.init_kwargs = address, init_kwargs
        self.actors, self.cpus_per_actor, self.gpus_per_actor = actors, cpus_per_actor, gpus_per_actor
        self.segment_passages, self.max_retries = segment_passages, max_retries
        self.started = False
        self.cluster_cpus = 0.0  # known once started

    def __enter__(self) -> "RayExecutor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        import ray
        import ray.data

        self.started = connect(self.address, **self.init_kwargs) or self.started
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver reports progress (index.cli's bars)
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        resources = ray.cluster_resources()
        self.cluster_cpus = float(resources.get("CPU", 1.0))
        self.cluster_gpus = float(resources.get("GPU", 0.0))
        if self.gpus_per_actor is None:
            self.gpus_per_actor = 1.0 if self.cluster_gpus else 0.0
        if self.actors is None:
            if self.gpus_per_actor:
                self.actors = max(1, int(self.cluster_gpus // self.gpus_per_actor))
            else:
                self.actors = max(1, int(self.cluster_cpus // self.cpus_per_actor))

    def close(self) -> None:
        """Stop the Ray instance this executor started (a cluster it joined keeps running)."""
        if self.started:
            import ray

            ray.shutdown()
            self.started = False

    def _ready(self) -> None:
        if not self.cluster_cpus:
            self.start()

    def _embed_rows(self, n: int) -> int:
        """Texts per actor call: at most :data:`EMBED_ROWS`, and few enough that each actor gets
        several calls (Ray Data bundles blocks up to the batch size: one batch of everything
        would keep all but one actor idle)."""
        return max(1, min(EMBED_ROWS, -(-n // (4 * self.actors))))

    def _blocks(self, n: int) -> int:
        return max(1, min(n, 4 * max(int(self.cluster_cpus), 1)))

    # Reading and chunking -------------------------------------------------------------------

    def read_files(self, top: str, real_root: str, jobs: list, fields, limits: Limits, embedder, chunk_tokens: int,
                   progress):
        """Each job's ``(digest, retry, entries or None, {place: (DocumentRow, chunks)})``, in
        order (index.builder.FileResult), read and chunked by Ray Data tasks."""
        import ray.data

        if not jobs:
            return
        self._ready()
        context = {"top": top, "real_root": real_root, "fields": dict(fields or {}), "limits": asdict(limits),
                   "model": embedder.name, "fingerprint": embedder.fingerprint, "chunk_tokens": chunk_tokens}
        items = [{"job": i, "spec": json.dumps([job.rel_str, job.old_digest, [list(e) for e in job.before or []]
                                                if job.before is not None else None])}
                 for i, job in enumerate(jobs)]
        ds = ray.data.from_items(items, override_num_blocks=self._blocks(len(items)))
        # Ray retries a task whose worker died (its default: 3 times); an error the code raises fails the build.
        ds = ds.flat_map(_read_file_task, fn_kwargs={"context": context})
        # One export can hold thousands of documents: spread them over blocks before chunking.
        ds = ds.repartition(self._blocks(max(len(jobs), 8 * int(self.cluster_cpus))))
        ds = ds.map_batches(_chunk_task, fn_kwargs={"context": context}, batch_size=16, batch_format="pandas")
        files: dict[int, dict] = {}
        entries: dict[int, list] = {}
        chunked = 0
        try:
            for row in ds.iter_rows():
                job = int(row["job"])
                if row["kind"] == "file":
                    files[job] = json.loads(row["payload"])
                    continue
                entry, value = json.loads(row["payload"])
                entries.setdefault(job, []).append((Entry(*entry), value))
                if value is not None:
                    chunked += 1
                    progress("chunking", chunked, 0)
        except Exception as exc:
            raise _failure("reading and chunking", exc) from exc
        for i in range(len(jobs)):
            info = files[i]
            if info["same"]:
                yield info["digest"], info["retry"], None, {}
                continue
            got = sorted(entries.get(i, []), key=lambda pair: pair[0].rec)
            found = {e.rec: (_document_row(value[0]), [tuple(c) for c in value[1]])
                     for e, value in got if value is not None}
            yield info["digest"], info["retry"], [e for e, _ in got], found

    # Embedding ------------------------------------------------------------------------------

    def embed(self, texts: list[str], embedder, batch_size: int | None, progress) -> np.ndarray:
        """The passage vectors of ``texts`` (sorted by length by the caller: each actor call gets
        texts of similar length), embedded by the actor pool; progress per batch that comes back."""
        import ray.data

        self._ready()
        out = np.empty((len(texts), 0), np.float32)
        done = 0
        progress("embedding", 0, len(texts))
        rows = self._embed_rows(len(texts))
        ds = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)],
                                 override_num_blocks=-(-len(texts) // rows))
        # The driver's own default batch (1 for ONNX on a CPU driver) is not a GPU actor's: each
        # actor then uses its model's preferred size (256 on a GPU); a size the user chose is kept.
        if batch_size == embedder.preferred_batch_size:
            batch_size = None
        ds = ds.map_batches(EmbedActor, fn_constructor_kwargs={
            "model": embedder.name, "fingerprint": embedder.fingerprint, "batch_size": batch_size,
            "threads": max(1, round(self.cpus_per_actor))},
            compute=ray.data.ActorPoolStrategy(size=self.actors), batch_size=rows, batch_format="numpy",
            num_cpus=self.cpus_per_actor, num_gpus=self.gpus_per_actor or None)
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                vectors = np.asarray(batch["vector"], np.float32)
                if out.shape[1] == 0:
                    out = np.zeros((len(texts), vectors.shape[1]), np.float32)
                out[np.asarray(batch["row"], np.int64)] = vectors
                done += len(vectors)
                progress("embedding", done, len(texts))
        except Exception as exc:
            raise _failure("embedding", exc) from exc
        if done != len(texts):
            raise ClusterBuildError(f"the actors returned {done} vectors for {len(texts)} passages: rebuild")
        return out

    # Writing --------------------------------------------------------------------------------

    def write_segments(self, build_dir: Path, base: int, documents: list[DocumentRow], passages: list[PassageRow],
                       vectors: np.ndarray, embedder, index_size: int | None = None,
                       cells_from: list[tuple[Path, dict]] | None = None) -> list[dict]:
        """Write the new passages as segments of at most ``segment_passages`` passages (split
        between documents), one Ray task each, into ``build_dir``; their descriptions in order
        (``index_size``: the new version's live passages, which size IVF cells:
        index.vectors.plan_vector_index; ``cells_from``: the index's kept segments, whose cells
        an IVF segment may share: index.segment.shared_cells)."""
        import ray

        from index import vectors as vector_module

        self._ready()
        means = language_means(vectors, [p.lang for p in passages])
        groups = split_segments(documents, passages, self.segment_passages)
        stamp = build_dir.name.removeprefix(".build-")
        task = ray.remote(_write_segment_task).options(max_retries=self.max_retries)
        refs, start = [], 0
        for k, (docs, count) in enumerate(groups):
            name = f"s-{stamp}" if len(groups) == 1 else f"s-{stamp}-{k:04d}"
            refs.append(task.remote(str(build_dir / SEGMENTS / name), base + start, docs, passages[start:start + count],
                                    vectors[start:start + count], means, vector_module.EXACT_MAX, embedder.name,
                                    self.max_retries, index_size, cells_from))
            start += count
        try:
            return ray.get(refs)
        except Exception as exc:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise _failure("writing the segments", exc) from exc


def split_segments(documents: list[DocumentRow], passages: list[PassageRow], most: int) -> list[tuple[list, int]]:
    """(documents, passage count) of each segment: consecutive documents, at most ``most``
    passages each (a document larger than that makes a segment of its own)."""
    per_doc: dict[str, int] = {}
    for p in passages:
        per_doc[p.doc_id] = per_doc.get(p.doc_id, 0) + 1
    groups: list[tuple[list, int]] = []
    docs, count = [], 0
    for d in documents:
        n = per_doc.get(d.doc_id, 0)
        if docs and count + n > most:
            groups.append((docs, count))
            docs, count = [], 0
        docs.append(d)
        count += n
    if docs:
        groups.append((docs, count))
    return groups


_ERROR_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)): (.+)$")


def _failure(stage: str, exc: BaseException) -> ClusterBuildError:
    """The worker's own error, not Ray's wrappings of it: Ray Data reports a UDF's error as a
    RayTaskError(UserCodeException) that holds the original only in its traceback's text."""
    cause = exc
    while isinstance(getattr(cause, "cause", None), BaseException) and cause.cause is not cause:
        cause = cause.cause
    if isinstance(cause, ClusterBuildError):
        return cause
    found = [m for line in str(exc).splitlines() for m in [_ERROR_LINE.match(line)]
             if m and not line.strip().startswith("ray.")]
    name, message = (found[0].group(1), found[0].group(2)) if found else (type(cause).__name__, str(cause))
    if name == "ClusterBuildError":
        return ClusterBuildError(message)
    return ClusterBuildError(f"the Ray build failed while {stage}: {name}: {message.strip()[:500]}; "
                             "the index in service is unchanged")


# What runs on the workers -------------------------------------------------------------------


def _worker_embedder(model: str, fingerprint: str):
    from polyseek.embedder import load_embedder

    embedder = load_embedder(model)
    if embedder.fingerprint != fingerprint:
        import socket

        raise ClusterBuildError(f"the model {model!r} on {socket.gethostname()} has fingerprint "
                                f"{embedder.fingerprint}, not the driver's {fingerprint}: install the same "
                                "model (and polyseek version) on every node")
    return embedder


def _read_file_task(row: dict, context: dict) -> list[dict]:
    """Read one file (and take its digest): a "file" row, then one row per document in it — a
    catalog entry for those skipped or unchanged, the document for those to chunk."""
    from index.builder import _parse_entries, _read_file
    from index.corpus import scrub
    import hashlib

    rel_str, old_digest, before = json.loads(row["spec"])
    limits = Limits(**context["limits"])
    data, skip = _read_file(Path(context["top"]) / rel_str, context["real_root"], limits)
    digest = hashlib.blake2b(data, digest_size=32).hexdigest() if data is not None else ""
    retry = data is None and skip.startswith("unreadable")
    same = bool(digest) and digest == old_digest
    out = [{"job": row["job"], "kind": "file", "payload": json.dumps({"digest": digest, "retry": retry, "same": same})}]
    if same:
        return out
    before_entries = [Entry(*e) for e in before] if before is not None else None
    for item in _parse_entries(scrub(rel_str), data, skip, context["fields"], limits, before_entries):
        if isinstance(item, Entry):
            payload = json.dumps([list(item), None])
            out.append({"job": row["job"], "kind": "entry", "payload": payload})
        else:
            rec, doc = item
            out.append({"job": row["job"], "kind": "document", "payload": json.dumps([rec, asdict(doc)])})
    return out


def _chunk_task(batch, context: dict):
    """Language identification and chunking of the documents of a batch (the same code as a
    local build: index.builder._chunk_entry)."""
    from index.builder import _chunk_entry
    from index.corpus import Document

    embedder = _worker_embedder(context["model"], context["fingerprint"])
    limits = Limits(**context["limits"])
    payloads = []
    for kind, payload in zip(batch["kind"], batch["payload"]):
        if kind != "document":
            payloads.append(payload)
            continue
        rec, fields = json.loads(payload)
        fields["pages"] = tuple(fields.get("pages") or ())
        entry, value = _chunk_entry(rec, Document(**fields), embedder, context["chunk_tokens"], limits)
        if value is not None:
            value = [asdict(value[0]), [list(c) for c in value[1]]]
        payloads.append(json.dumps([list(entry), value]))
    batch = batch.copy()
    batch["payload"] = payloads
    batch["kind"] = ["file" if k == "file" else "entry" for k in batch["kind"]]
    return batch


def _document_row(fields: dict) -> DocumentRow:
    fields = dict(fields)
    fields["pages"] = tuple(fields.get("pages") or ())
    return DocumentRow(**fields)


class EmbedActor:
    """One model per actor, loaded once; each call embeds a batch of passages."""

    def __init__(self, model: str, fingerprint: str, batch_size: int | None, threads: int):
        self.embedder = _worker_embedder(model, fingerprint)
        self.embedder.set_threads(threads)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        vectors = self.embedder.embed(texts, "passage", batch_size=self.batch_size)
        return {"row": np.asarray(batch["row"], np.int64), "vector": np.asarray(vectors, np.float32)}


def _write_segment_task(folder: str, base: int, documents: list, passages: list, vectors: np.ndarray, means: dict,
                        exact_max: int, model: str, max_retries: int, index_size: int | None = None,
                        cells_from: list[tuple[Path, dict]] | None = None) -> dict:
    """Write one segment (a retried attempt first removes what a dead one left). An IVF
    segment's vectors are added by Ray tasks to copies of its trained index, then merged."""
    from index.vectors import tuning_queries
    from index.segment import write_segment
    from index.vectors import add_in_shards, add_shard
    from polyseek.embedder import load_embedder

    path = Path(folder)
    if path.exists():
        shutil.rmtree(path)
    shards = max(1, -(-len(passages) // SHARD_ROWS))

    def add(index, rows, ids):
        import ray

        remote = ray.remote(add_shard).options(max_retries=max_retries)
        run = lambda fn, jobs: ray.get([remote.remote(*job) for job in jobs])  # noqa: E731
        add_in_shards(index, rows, ids, max(shards, 2), run)

    return write_segment(path, base, documents, passages, vectors, means, exact_max=exact_max,
                         tuning_queries=lambda: tuning_queries(load_embedder(model), passages), add_vectors=add,
                         index_size=index_size, cells_from=cells_from)
