"""models/trainer.py: token noise."""

import pytest
import torch

from pipeline.core.errors import ConfigError
from pipeline.models.network import ModelConfig, SequenceModel


def test_token_noise_replaces_a_share_of_the_inputs_by_tokens_of_the_batch(tiny_train_config, tiny_dataset):
    from pipeline.models.trainer import Trainer
    from pipeline.store.dataset import load_dataset
    from pipeline.store.rundir import with_encoding_defaults
    ds = load_dataset(tiny_dataset, "names")
    x = torch.arange(64 * 50).reshape(64, 50) % 97
    for share in (0.0, 0.3):
        cfg = tiny_train_config(tiny_dataset, token_noise=share)
        trainer = Trainer(cfg, ds, SequenceModel(ModelConfig(vocab_size=len(ds.vocab))), torch.device("cpu"))
        a = trainer._noisy(x, torch.Generator().manual_seed(5))
        assert torch.equal(a, trainer._noisy(x, torch.Generator().manual_seed(5)))  # the epoch's generator decides
        changed = (a != x).float().mean().item()
        assert changed == 0.0 if share == 0 else 0.25 < changed < 0.35
        assert set(a.unique().tolist()) <= set(x.unique().tolist())  # replacements are tokens of the batch
    with pytest.raises(ConfigError, match="--token-noise"):
        tiny_train_config(tiny_dataset, token_noise=1.0).validate()
    # the pitch default (README: benchmarks); other encodings are not noised unless asked
    assert with_encoding_defaults(tiny_train_config(tiny_dataset, encoding="pitch"), set()).token_noise == 0.3
    assert with_encoding_defaults(tiny_train_config(tiny_dataset, encoding="names"), set()).token_noise == 0.0
    assert with_encoding_defaults(tiny_train_config(tiny_dataset, encoding="pitch", token_noise=0.0),
                                  {"token_noise"}).token_noise == 0.0
