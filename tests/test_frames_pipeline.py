"""The frames encoding through the pipeline: roll files extract with their own split, nats per frame in evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_run, tiny_train_config
from pipeline.codecs import get_codec
from pipeline.codecs.frames import FRAME_END, tokens_to_rolls
from pipeline.codecs.onsets import TimingModel
from pipeline.stages.evaluate import EvalConfig, evaluate
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.train import train
from pipeline.store.dataset import load_dataset

CHORDS = [[60, 64, 67], [60, 64, 67], [62, 65, 69], [], [59, 62, 67, 74]]


def roll_file(path: Path, n: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    data = {side: [[CHORDS[int(i)] for i in rng.integers(0, len(CHORDS), 40)] for _ in range(k)]
            for side, k in n.items()}
    path.write_text(json.dumps(data))
    return path


def test_codec_round_trip_and_the_opening_marker():
    codec = get_codec("frames")
    notes = codec.decode([FRAME_END, "C4", "E4", "|", "C4", "E4", "|", "|", "G4", "|"], TimingModel(np.ones((1, 2)), 60))
    tokens = codec.encode(notes)
    assert tokens == [FRAME_END, "C4", "E4", "|", "C4", "E4", "|", "|", "G4", "|"]
    assert codec.scored_frames(tokens) == 4 and len(codec.vocabulary([])) == 89
    assert codec.to_groups(tokens) == [[60, 64], [67]]  # struck notes only: a held chord is not struck again


def test_a_roll_file_keeps_its_own_split_and_evaluate_scores_nats_per_frame(tmp_path):
    src = roll_file(tmp_path / "tiny-rolls.json", {"train": 6, "valid": 2, "test": 3})
    extract([src], ExtractConfig(name="rolls", out=str(tmp_path / "processed"), workers=1))
    ds = load_dataset(tmp_path / "processed" / "rolls", "frames")
    assert {k: len(ds.split[k]) for k in ("train", "validation", "test")} == {"train": 6, "validation": 2, "test": 3}
    data = json.loads(src.read_text())
    test_piece = sorted(p for p in ds.split["test"])[0]
    want = [sorted(f) for f in data["test"][0]]
    while want and not want[-1]:  # a note table ends with its last note: trailing silent frames are not kept
        want.pop()
    assert tokens_to_rolls(ds.sequences[test_piece][1:]) == want
    config = tiny_train_config(tmp_path / "processed" / "rolls", encoding="frames", epochs=1, window=10)
    train(config, tmp_path / "runs" / "f")
    res = evaluate(tmp_path / "runs" / "f", EvalConfig(dataset=str(tmp_path / "processed" / "rolls"), side="test",
                                                          window=5))
    assert res["frames"] == sum(len(tokens_to_rolls(ds.sequences[p][1:])) for p in ds.split["test"])
    assert res["unknown_tokens"] == 0
    assert 0 < res["nats_per_frame"] < 89 * np.log(89)
    assert set(res["baseline_nats_per_frame"]) == set(res["baselines"])
    # the per-frame figure is the full-context loss of every token after the opening marker, per frame
    assert res["nats_per_frame_scored"] in ("averaged over keys", "written key")


def test_a_file_with_only_a_test_split_extracts_and_is_scored_whole(tmp_path):
    run = tiny_run(tmp_path / "a", encoding="frames", window=10)
    src = roll_file(tmp_path / "only-test.json", {"test": 2})
    extract([src], ExtractConfig(name="held", out=str(tmp_path / "processed"), workers=1))
    res = evaluate(run, EvalConfig(dataset=str(tmp_path / "processed" / "held"), window=5))
    assert res["pieces"] == 2 and 70 < res["frames"] <= 80


def test_a_pickle_that_runs_code_is_refused_in_one_line(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps({"train": [[[60]]], "x": Evil()}))
    with pytest.raises(Exception):
        extract([bad], ExtractConfig(name="bad", out=str(tmp_path / "processed"), workers=1))
    assert not (tmp_path / "pwned").exists()


def test_init_from_starts_from_another_runs_weights_and_says_so(tmp_path):
    import torch
    from click.testing import CliRunner

    import cli
    from pipeline.models.network import model_from_checkpoint
    from pipeline.store.rundir import load_checkpoint, read_run_config

    base = tiny_run(tmp_path / "base", encoding="frames", window=10, hidden=12)
    other = tmp_path / "other"
    src = roll_file(tmp_path / "mine.json", {"train": 3, "valid": 1})
    extract([src], ExtractConfig(name="mine", out=str(other / "processed"), workers=1))
    r = CliRunner().invoke(cli.main, ["train", "--data", str(other / "processed" / "mine"), "--encoding", "frames",
                                      "--init-from", str(base), "--epochs", "1", "--window", "10", "--batch", "2",
                                      "--runs", str(other / "runs"), "--name", "tuned"])
    assert r.exit_code == 0, r.output
    tuned = other / "runs" / "tuned"
    config = read_run_config(tuned)
    assert config["init_from"] == str(base.resolve()) and config["hidden"] == 12  # the base's width, not asked for
    # a resume and an evaluate still work from the run folder alone
    r = CliRunner().invoke(cli.main, ["train", "--runs", str(other / "runs"), "--name", "tuned", "--resume",
                                      "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tuned, "last").epoch == 2
    # a names run cannot start from a frames run: one line
    r = CliRunner().invoke(cli.main, ["train", "--data", str(tmp_path / "base" / "processed" / "tiny"),
                                      "--init-from", str(base), "--epochs", "1", "--runs", str(other / "runs"),
                                      "--name", "bad"])
    assert r.exit_code != 0 and "vocabulary" in r.output and "Traceback" not in r.output
    assert isinstance(model_from_checkpoint(load_checkpoint(tuned)), torch.nn.Module)


def test_evaluate_defaults_on_frames_score_full_context_only_and_agree_with_nats_per_frame(tmp_path):
    src = roll_file(tmp_path / "r.json", {"train": 4, "valid": 2})
    extract([src], ExtractConfig(name="r", out=str(tmp_path / "processed"), workers=1))
    train(tiny_train_config(tmp_path / "processed" / "r", encoding="frames", epochs=1, window=10, transpose=1),
          tmp_path / "runs" / "f")
    res = evaluate(tmp_path / "runs" / "f", EvalConfig(dataset=str(tmp_path / "processed" / "r"), side="validation"))
    assert res["window"] == 0 and res["loss"] is None and res["keys"] == 3
    # the same targets (every token after a piece's opening marker), the same key-averaged predictor
    assert res["full_context_loss"] * res["targets"] == pytest.approx(res["nats_per_frame"] * res["frames"], rel=1e-6)
    assert res["nats_per_frame_scored"] == "averaged over keys"
    best = res["best_baseline"]
    assert res["baselines"][best] * res["targets"] == pytest.approx(
        res["baseline_nats_per_frame"][best] * res["frames"], rel=1e-6)
