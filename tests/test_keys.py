"""Key averaging: a model trained in several keys predicts as the mixture over them."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_train_config
from pipeline.models.augment import as_predicting, training_pieces, vocab_key_map
from pipeline.store.dataset import load_dataset
from pipeline.stages.evaluate import EvalConfig, evaluate
from pipeline.stages.generate import GenerateConfig, generate, sample_refeed
from pipeline.models.network import KeyAveraged, ModelConfig, SequenceModel
from pipeline.store.rundir import load_checkpoint
from pipeline.models.network import model_from_checkpoint
from pipeline.stages.train import train

PITCHES = [str(p) for p in range(58, 67)]  # a pitch vocabulary of 9 notes: 58..66


def pitch_model(seed: int = 0, cell: str = "gru") -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=len(PITCHES), cell=cell, layers=2, hidden=10, embed=4)).eval()


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


def test_the_average_is_the_mixture_of_the_sequence_read_in_each_key():
    model = pitch_model()
    km = vocab_key_map(PITCHES, "pitch", 2)
    avg = KeyAveraged(model, km)
    seq = torch.tensor([[2, 4, 3, 5, 6, 4, 2]])   # 60 62 61 63 64 62 60: every key -2..+2 can write it
    with torch.no_grad():
        got, _ = avg(seq)
        want = []
        for row in km:
            lp = torch.log_softmax(model(torch.as_tensor(row)[seq])[0], -1)[0]      # (time, vocab) in that key
            back = torch.full((7, 9), -math.inf)
            ok = row >= 0
            back[:, torch.as_tensor(ok)] = lp[:, torch.as_tensor(row[ok])]      # p_k(token moved into key k)
            want.append(back - torch.logsumexp(back, -1, keepdim=True))  # given what the written key can write
        mix = torch.logsumexp(torch.stack(want), 0) - math.log(len(km))
    assert torch.allclose(got[0], mix, atol=1e-5)
    assert torch.allclose(got.exp().sum(-1), torch.ones(1, 7), atol=1e-5)


def test_a_key_leaves_the_average_from_the_first_token_it_cannot_write():
    model = pitch_model()
    km = vocab_key_map(PITCHES, "pitch", 1)
    avg = KeyAveraged(model, km)
    seq = torch.tensor([[3, 4, 8, 5, 4]])          # 8 (66) cannot go up a semitone: key +1 drops out from there
    with torch.no_grad():
        got, (_, alive) = avg(seq)
        # from the third token on the mixture is that of keys -1 and 0: as a model that only had those
        full_two, _ = KeyAveraged(model, km[:2])(seq)
    assert alive.tolist() == [[True, True, False]]
    assert torch.allclose(got[0, 2:], full_two[0, 2:], atol=1e-5)
    assert not torch.allclose(got[0, :2], full_two[0, :2], atol=1e-4)
    assert torch.allclose(got.exp().sum(-1), torch.ones(1, 5), atol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_sampling_from_the_average_steps_as_the_whole_sequence_reads(cell):
    avg = KeyAveraged(pitch_model(1, cell), vocab_key_map(PITCHES, "pitch", 2))
    primer = torch.tensor([[3, 4, 5], [4, 4, 2]])
    greedy = avg.generate(primer, 12, 0.0, torch.Generator().manual_seed(0))
    refeed = sample_refeed(avg, primer, 12, 1e-9, torch.Generator().manual_seed(0), window=100)
    assert greedy == refeed
    drawn = avg.generate(primer, 40, 1.0, torch.Generator().manual_seed(3))
    assert all(0 <= t < len(PITCHES) for row in drawn for t in row) and len(drawn[0]) == 40


def test_evaluate_and_generate_average_over_the_keys_a_run_trained_in(tiny_dataset, tmp_path):
    run = tmp_path / "t2"
    train(tiny_train_config(tiny_dataset, encoding="pitch", transpose=2, epochs=1, hidden=8), run)
    ckpt = load_checkpoint(run)
    model = model_from_checkpoint(ckpt)
    assert isinstance(as_predicting(model, ckpt), KeyAveraged) and as_predicting(model, ckpt).keys == 5
    assert as_predicting(model, ckpt, "one") is model
    res = evaluate(run, EvalConfig(dataset=str(tiny_dataset), window=6), device="cpu")
    one = evaluate(run, EvalConfig(dataset=str(tiny_dataset), window=6, keys="one"), device="cpu")
    assert res["keys"] == 5 and one["keys"] == 1 and "one_key" not in one
    assert res["one_key"]["loss"] == pytest.approx(one["loss"]) and res["loss"] != pytest.approx(one["loss"])
    assert res["one_key"]["full_context_loss"] == pytest.approx(one["full_context_loss"])
    assert res["baselines"] == one["baselines"] and res["targets"] == one["targets"]
    a = generate(run, GenerateConfig(count=2, length=20, seed=1), tmp_path / "all")
    b = generate(run, GenerateConfig(count=2, length=20, seed=1, keys="one"), tmp_path / "one")
    assert a.config["keys"] == "all" and b.config["keys"] == "one" and a.samples != b.samples
    # a run trained in one key has nothing to average
    flat = tmp_path / "t0"
    train(tiny_train_config(tiny_dataset, encoding="pitch", transpose=0, epochs=1, hidden=8), flat)
    assert evaluate(flat, EvalConfig(dataset=str(tiny_dataset), window=6), device="cpu")["keys"] == 1
