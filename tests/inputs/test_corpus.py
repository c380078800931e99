"""inputs/corpus.py: the bundled ABC corpora."""
from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError
from pipeline.inputs import corpus


def test_bundled_corpus():
    tunes = corpus.bundled_corpus_tunes("oneills1850")
    assert len(tunes) > 100
    assert all(t.text.startswith("X:") and t.source.startswith("oneills1850/") for t in tunes)
    assert corpus.bundled_corpus_tunes("oneills1850", limit=5) == tunes[:5]
    assert len(corpus.bundled_corpus_tunes("default")) >= 2000
    with pytest.raises(ConfigError):
        corpus.bundled_corpus_tunes("no-such-corpus")
