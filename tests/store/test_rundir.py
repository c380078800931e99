"""store/rundir.py: run configs, old and new."""

from pipeline.store.rundir import TrainConfig


def test_runs_written_before_tbptt_read_as_windows_runs():
    from pipeline.store.rundir import canonical_config, selection_metric
    old = {k: v for k, v in TrainConfig(mode="windows", transpose=0, stack="plain").to_dict().items()
           if k not in ("mode", "weight_decay", "transpose", "stack")}
    assert TrainConfig.from_dict(old).mode == "windows" and TrainConfig.from_dict(old).transpose == 0
    assert TrainConfig.from_dict(old).stack == "plain" and TrainConfig().stack == "residual"
    assert canonical_config(old) == canonical_config(TrainConfig(mode="windows", transpose=0, stack="plain"))
    assert selection_metric(old) == "val_loss" and selection_metric(TrainConfig()) == "val_full_loss"
    assert TrainConfig().mode == "tbptt" and TrainConfig().transpose == 6


def test_chars_defaults_apply_only_to_options_not_given():
    from pipeline.codecs import get_codec
    from pipeline.store.rundir import with_encoding_defaults
    chars = get_codec("chars").train_defaults
    cfg = with_encoding_defaults(TrainConfig(encoding="chars", seed=3), {"encoding", "seed"})
    for k, v in chars.items():
        assert getattr(cfg, k) == v, k
    if chars:
        key = next(iter(chars))
        mine = with_encoding_defaults(TrainConfig(encoding="chars"), {"encoding", key})
        assert getattr(mine, key) == getattr(TrainConfig(), key)
    assert with_encoding_defaults(TrainConfig(encoding="names"), set()) == TrainConfig(encoding="names")
