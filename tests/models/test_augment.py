"""models/augment.py: transpositions and the key map."""
from __future__ import annotations

import json

from pipeline.models.augment import training_pieces, vocab_key_map
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.train import train
from pipeline.store.dataset import load_dataset

PITCHES = [str(p) for p in range(58, 67)]  # a pitch vocabulary of 9 notes: 58..66


def test_the_key_map_moves_each_token_and_marks_the_ones_without_a_place():
    km = vocab_key_map(PITCHES, "pitch", 2)
    assert km.shape == (5, 9) and km[2].tolist() == list(range(9))
    assert km[3].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, -1]       # +1: 66 has no 67
    assert km[0].tolist() == [-1, -1, 0, 1, 2, 3, 4, 5, 6]      # -2
    names = ["C4", "C4.E4", "D4", "D4.F#4", "<end>"]
    km = vocab_key_map(names, "names", 2)
    assert km[4].tolist() == [2, 3, -1, -1, 4]                   # +2: C4 -> D4, C4.E4 -> D4.F#4, <end> stays


def test_the_key_map_agrees_with_the_training_pieces_map(tiny_dataset):
    for enc in ("names", "pitch", "tsd"):
        pieces = training_pieces(load_dataset(tiny_dataset, enc), 3)
        km = vocab_key_map(pieces.vocab.tokens, enc, 3)
        old = pieces.key_map
        assert ((km[:, :old.shape[1]] == old) | (old < 0)).all()


def test_transpose_augmentation(tiny_train_config, tiny_dataset, tmp_path):
    from pipeline.codecs import transpose_tokens
    from pipeline.store.dataset import load_dataset
    assert transpose_tokens(["C4.E4", "G4"], "names", 2) == ["D4.F#4", "A4"]
    assert transpose_tokens(["127"], "pitch", 1) is None
    from pipeline.models.augment import augment_transpositions
    ds = load_dataset(tiny_dataset, "names")
    aug = augment_transpositions(ds, 2)
    assert len(aug.split["train"]) == 5 * len(ds.split["train"]) and aug.split["validation"] == ds.split["validation"]
    assert aug.vocab.tokens[:len(ds.vocab)] == ds.vocab.tokens  # old ids keep their meaning
    run = tmp_path / "t"
    train(tiny_train_config(tiny_dataset, transpose=2, epochs=1), run)
    assert json.loads((run / "config.json").read_text())["vocab_size"] == len(aug.vocab)
    out = generate(run, GenerateConfig(count=1, length=5))
    assert len(out.samples[0]) == 5
    # chars ignores transposition: the run's identity and config.json say 0
    assert tiny_train_config(tiny_dataset, transpose=2, encoding="chars").transpose == 0


def test_transposed_pieces_are_the_stored_ids_read_through_a_key_map(tiny_dataset):
    """Each piece in each key equals it moved token by token; the pieces themselves are held once."""
    from pipeline.codecs import Vocabulary, transpose_tokens
    from pipeline.models.augment import training_pieces
    from pipeline.store.dataset import Dataset, load_dataset
    ds = load_dataset(tiny_dataset, "names")
    pieces = training_pieces(ds, 3)
    want, new = {p: ds.sequences[p] for p in ds.pieces("train")}, []
    for p in ds.pieces("train"):  # the reference: every piece moved as strings, new tokens numbered as met
        for k in (-3, -2, -1, 1, 2, 3):
            moved = transpose_tokens(ds.sequences[p], "names", k)
            if moved is not None:
                want[f"{p}@{k:+d}"] = moved
                new += [t for t in moved if t not in ds.vocab.index]
    assert pieces.vocab.tokens == ds.vocab.tokens + sorted(set(new), key=new.index)  # old ids keep their meaning
    assert pieces.names == list(want)  # the stored pieces first, then each piece in each key
    assert {n: pieces.vocab.decode(a) for n, a in zip(pieces.names, pieces)} == want
    assert len(pieces.arrays) == len(ds.pieces("train")) and pieces.key_map.shape == (7, len(ds.vocab))
    assert pieces.lengths.tolist() == [len(s) for s in want.values()]
    assert training_pieces(ds).key_map is None and len(training_pieces(ds)) == len(ds.pieces("train"))
    # a key that would push a pitch past 127 (or below 0) is left out for that piece only
    pitch = Dataset(tiny_dataset, "pitch", {"a": ["60", "127"], "b": ["0", "64"], "c": ["5", "6"], "v": ["60"]},
                    Vocabulary([str(p) for p in range(128)]), {"train": ["a", "b", "c"], "validation": ["v"]}, {})
    assert training_pieces(pitch, 1).names == ["a", "b", "c", "a@-1", "b@+1", "c@-1", "c@+1"]


def test_one_piece_dataset_transposes_its_training_head_only(tiny_train_config, tiny_midi_dir, tmp_path):
    from pipeline.models.augment import augment_transpositions
    from pipeline.stages.extract import ExtractConfig, extract
    from pipeline.store.dataset import load_dataset
    extract([tiny_midi_dir / "piece1.mid"], ExtractConfig(name="one", out=str(tmp_path / "p"), workers=1))
    ds = load_dataset(tmp_path / "p" / "one", "pitch")
    aug = augment_transpositions(ds, 2)
    (piece,) = ds.split["train"]
    head, tail = ds.side_sequences("train")[piece], ds.side_sequences("validation")[piece + ":tail"]
    assert aug.side_sequences("validation") == {piece + ":tail": tail}
    assert aug.side_sequences("train")[piece] == head and len(aug.split["train"]) == 5
    assert all(len(s) == len(head) for s in aug.side_sequences("train").values())
    s = train(tiny_train_config(tmp_path / "p" / "one", encoding="pitch", transpose=2, epochs=1, window=4,
                                batch=4), tmp_path / "r")
    assert s.epochs == 1
