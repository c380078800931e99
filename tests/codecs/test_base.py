"""codecs/base.py: the vocabulary."""

from pipeline.codecs import Vocabulary, build_vocabulary


def test_vocabulary_round_trip(tmp_path):
    v = build_vocabulary([["E4", "C4.E4"], ["C4", "E4"]], "names")
    assert v.tokens == ["C4", "C4.E4", "E4"]
    ids = v.encode(["E4", "C4"])
    assert v.decode(ids) == ["E4", "C4"]
    v.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == v
    assert build_vocabulary([], "pitch").encode(["0", "127"]).tolist() == [0, 127]
