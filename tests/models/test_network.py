"""models/network.py: the sequence model, sampling from it, key averaging, devices."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.core.errors import ConfigError
from pipeline.models.augment import vocab_key_map
from pipeline.models.network import KeyAveraged, ModelConfig, SequenceModel, resolve_device
from pipeline.stages.generate import sample_refeed


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(ConfigError, match="one of auto, cpu, cuda, mps"):
        resolve_device("tpu")


def test_sampled_frequencies_follow_the_softmax_at_the_temperature():
    """The inverse-CDF sampler draws each token with its softmax probability at temperature T."""
    model = SequenceModel(ModelConfig(vocab_size=5, cell="gru", layers=1, hidden=4, embed=3, dropout=0.0))
    logits = torch.tensor([0.0, 1.0, 2.0, -1e4, 0.5])  # token 3 is (numerically) impossible
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(logits)
    for t in (1.0, 0.5):
        ids = model.generate(torch.zeros(200, 1, dtype=torch.long), 100, t, torch.Generator().manual_seed(1))
        counts = torch.bincount(torch.tensor(ids).flatten(), minlength=5).double()
        want = torch.softmax(logits.double() / t, 0)
        assert counts[3] == 0
        assert torch.allclose(counts / counts.sum(), want, atol=0.01), (counts / counts.sum(), want)


def test_same_seed_same_samples_and_batches_are_independent_draws():
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=9, cell="lstm", layers=2, hidden=8, embed=4))
    primer = torch.randint(0, 9, (4, 3))
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    a, b = model.generate(primer, 70, 1.0, g(3)), model.generate(primer, 70, 1.0, g(3))
    assert a == b and model.generate(primer, 70, 1.0, g(4)) != a
    assert len({tuple(r) for r in a}) == 4  # one primer, four different continuations
    assert all(len(r) == 70 for r in a)  # 70: not a multiple of the 32-step chunks


def test_regression_sampling_takes_the_nearest_pitch_plus_noise():
    model = SequenceModel(ModelConfig(vocab_size=128, cell="gru", layers=1, hidden=4, embed=3, task="regress"))
    model.set_vocabulary([str(p) for p in range(128)])
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_((64.4 - 60) / 12)  # always predicts pitch 64.4
    primer = torch.zeros(3, 2, dtype=torch.long)
    assert model.generate(primer, 5, 0.0) == [[64] * 5] * 3  # no noise: the nearest pitch
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noisy = model.generate(primer, 300, 1.0, g(), noise=2.0)
    flat = torch.tensor(noisy, dtype=torch.float64)
    assert abs(flat.mean() - 64.4) < 0.3 and 1.6 < flat.std() < 2.4  # N(64.4, 2) rounded to a pitch
    assert noisy == model.generate(primer, 300, 1.0, g(), noise=2.0)


PITCHES = [str(p) for p in range(58, 67)]  # a pitch vocabulary of 9 notes: 58..66


def pitch_model(seed: int = 0, cell: str = "gru") -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(vocab_size=len(PITCHES), cell=cell, layers=2, hidden=10, embed=4)).eval()


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


@pytest.mark.parametrize("cell,embed,stack", [("lstm", 5, "residual"), ("gru", 0, "residual"), ("rnn", 5, "residual"),
                                              ("gru", 5, "plain")])
def test_stateful_sampling_equals_full_refeed(cell, embed, stack):
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(vocab_size=11, cell=cell, layers=3, hidden=12, embed=embed, stack=stack))
    primer = torch.randint(0, 11, (3, 6))
    g = torch.Generator().manual_seed(0)
    greedy = model.generate(primer, 15, 0.0, g)
    # greedy re-feeding the whole history (window larger than the sequence) must agree exactly
    refeed = sample_refeed(model, primer, 15, 1e-9, torch.Generator().manual_seed(0), window=100)
    assert greedy == refeed


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_plain_stack_is_torchs_fused_one_and_reads_its_checkpoints(cell):
    """Runs saved before residual stacks hold a fused nn.GRU/LSTM/RNN(num_layers=3): they load and score the same."""
    torch.manual_seed(0)
    fused = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](4, 6, num_layers=3, batch_first=True)
    old = {"embed.weight": torch.randn(9, 4), "head.weight": torch.randn(9, 6), "head.bias": torch.randn(9),
           **{f"rnn.{k}": v for k, v in fused.state_dict().items()}}
    args = {"vocab_size": 9, "cell": cell, "layers": 3, "hidden": 6, "embed": 4, "dropout": 0.0, "task": "classify"}
    model = SequenceModel.from_dict(args)  # a checkpoint's model_args, without the stack field
    assert model.config.stack == "plain"
    model.load_state_dict(old)
    x = torch.randint(0, 9, (2, 7))
    with torch.no_grad():
        h, state = fused(old["embed.weight"][x])
        out, mine = model(x)
    assert torch.allclose(out, h @ old["head.weight"].T + old["head.bias"], atol=1e-5)
    for a, b in zip(state if cell == "lstm" else [state], mine if cell == "lstm" else [mine]):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
    assert model.rnn.weight_hh_l2 is model.rnn.layers[2].weight_hh_l0
    # the same weights in a residual stack read differently: each layer above the first adds its input
    res = SequenceModel(ModelConfig(**args, stack="residual"))
    res.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(res(x)[0], out, atol=1e-3)


def test_sampling_stops_at_end_token():
    model = SequenceModel(ModelConfig(vocab_size=5, cell="gru", layers=1, hidden=4, embed=3))
    with torch.no_grad():
        model.head.bias[:] = torch.tensor([0, 0, 0, 0, 50.0])  # id 4 plays <end>
    out = model.generate(torch.zeros(4, 2, dtype=torch.long), 100, 1.0, torch.Generator().manual_seed(0), stop_id=4)
    assert out == [[4]] * 4
