"""One config convention: every stage config validates, and saving then loading gives it back."""
from __future__ import annotations

import math

import pytest

from pipeline.stages.compare import CompareConfig
from pipeline.core.config import StageConfig
from pipeline.core.errors import ConfigError
from pipeline.stages.evaluate import EvalConfig
from pipeline.stages.extract import ExtractConfig
from pipeline.stages.generate import GenerateConfig
from pipeline.stages.grid import GridConfig
from pipeline.stages.heatmap import HeatmapConfig
from pipeline.stages.render import RenderConfig
from pipeline.stages.tally import TallyConfig
from pipeline.store.rundir import TrainConfig

CONFIGS = [
    ExtractConfig(name="noct", out="elsewhere", onset_tolerance=0.05, val_fraction=0.3, split_seed=4, workers=2,
                  frame_seconds=0.5),
    TrainConfig(dataset="processed/x", encoding="pitch", task="regress", cell="lstm", layers=3, hidden=17,
                dropout=0.1, optimizer="rmsprop", lr=0.01, transpose=3, max_minutes=1.5, init_from="runs/base"),
    EvalConfig(dataset="processed/jsb", side="test", checkpoint="last", window=20, keys="one", orders=(1, 3)),
    GenerateConfig(count=3, length=40, temperature=0.7, seed=9, primer="tokens", primer_tokens=("C4", "E4.G4")),
    RenderConfig(audio="flac", piano_roll=False, fixed_beats=0.5, include_primer=False),
    CompareConfig(temperatures=(0.5, 1.5), count=3, length=50, blind=True, primer_piece="p"),
    HeatmapConfig(units=(3, 17), layer=0, state="cell", text="X:1"),
    GridConfig(name="study", workers=2, executor="ray", address="auto"),
    TallyConfig(confidence=0.9, resamples=500, seed=3),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_save_then_load_gives_the_same_config(config, tmp_path):
    assert isinstance(config, StageConfig)
    config.validate()
    path = config.save(tmp_path / "config.json")
    again = type(config).load(path)
    assert again == config
    assert type(config).from_dict({**config.to_dict(), "from_a_newer_version": 1}) == config


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_defaults_are_valid(config):
    required = {ExtractConfig: {"name": "x"}, EvalConfig: {"dataset": "processed/x"}}  # options with no default
    type(config)(**required.get(type(config), {})).validate()


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(lr=math.inf), lambda: TrainConfig(dropout=math.nan), lambda: TrainConfig(cell="transformer"),
    lambda: GenerateConfig(temperature=math.nan), lambda: GenerateConfig(length=10**9),
    lambda: RenderConfig(audio="mp3"), lambda: CompareConfig(temperatures=(1.0, math.inf)),
    lambda: HeatmapConfig(top=0), lambda: EvalConfig(), lambda: EvalConfig(dataset="x", side="everything"),
    lambda: ExtractConfig(name="x", frame_seconds=0), lambda: GridConfig(executor="slurm"),
    lambda: ExtractConfig(name="x", val_fraction=1),
    lambda: TallyConfig(confidence=1.0), lambda: TallyConfig(resamples=0),
])
def test_bad_values_are_config_errors(make):
    with pytest.raises(ConfigError):
        make().validate()


def test_a_damaged_config_file_is_a_config_error(tmp_path):
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError):
        TrainConfig.load(tmp_path / "c.json")
