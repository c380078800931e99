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


def test_what_an_encoding_does_not_have_is_refused_in_one_line():
    import pytest

    from pipeline.codecs import get_codec
    from pipeline.codecs.base import EncodingError
    from pipeline.core.errors import ConfigError

    chars = get_codec("chars")
    for call in (lambda: chars.to_groups(["a"]), lambda: chars.transpose(["a"], 1),
                 lambda: get_codec("names").encode_text("X:1")):
        with pytest.raises(EncodingError) as err:
            call()
        assert isinstance(err.value, ConfigError) and "\n" not in str(err.value)
    assert chars.pitches(["a"]) == []  # asked first, as the stages do: no notes, no error
