"""The evaluate stage: unknown tokens, baselines, key averaging, nats per frame."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.codecs import Vocabulary
from pipeline.codecs.frames import tokens_to_rolls
from pipeline.core.errors import DatasetError
from pipeline.models.augment import as_predicting
from pipeline.models.network import KeyAveraged, model_from_checkpoint
from pipeline.stages.evaluate import EvalConfig, eval_markdown, evaluate, known_segments
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.train import train
from pipeline.store.dataset import load_dataset
from pipeline.store.rundir import eval_name, load_checkpoint, read_eval, read_evals

UNKNOWN_AT = (10, 20, 45)  # onsets of the unseen piece played at a pitch no training piece has


@pytest.fixture
def unseen_piece(write_pm):
    """``unseen_piece(path)``: 60 single notes of the training pieces' scale, three of them replaced by
    MIDI pitch 100."""
    def write(path):
        scale = [60, 62, 64, 65, 67, 69, 71, 72]
        notes = [(100 if i in UNKNOWN_AT else scale[(3 * i) % 8], 0.5 * i, 0.5 * i + 0.4) for i in range(60)]
        return write_pm(path, notes)
    return write


@pytest.fixture
def unseen_dataset(unseen_piece, tmp_path):
    unseen_piece(tmp_path / "unseen" / "a.mid")
    extract([tmp_path / "unseen"], ExtractConfig(name="unseen", out=str(tmp_path / "processed"), workers=1))
    return tmp_path / "processed" / "unseen"


@pytest.fixture
def names_run(tiny_train_config, tiny_dataset, tmp_path):
    run = tmp_path / "runs" / "r"
    train(tiny_train_config(tiny_dataset, epochs=1, hidden=8), run)
    return run


def test_known_segments_cut_at_unknown_tokens():
    vocab = Vocabulary(["a", "b", "c"])
    segments, unknown, examples = known_segments([["a", "x", "b", "b", "y", "y", "c"], ["z"], []], vocab)
    assert [s.tolist() for s in segments] == [[0], [1, 1], [2]]
    assert unknown == 4 and examples == ["y", "x", "z"]


def test_evaluate_counts_unknown_tokens_and_scores_every_row_on_the_same_targets(names_run, unseen_dataset):
    window = 5
    res = evaluate(names_run, EvalConfig(dataset=str(unseen_dataset), window=window), device="cpu")
    assert res["unknown_tokens"] == len(UNKNOWN_AT) and res["unknown_examples"] == ["E7"]
    # the piece is cut at each unknown onset: stretches of 10, 9, 24 and 14 known tokens
    assert res["targets"] == sum(n - window for n in (10, 9, 24, 14))
    assert res["pieces"] == 1 and res["tokens"] == 60
    assert set(res["baselines"]) == {"1-gram", "2-gram", "3-gram", "5-gram"}
    for value in (res["loss"], res["full_context_loss"], *res["baselines"].values()):
        assert math.isfinite(value) and value > 0
    assert 0 <= res["acc"] <= 1 and res["best_baseline"] in res["baselines"]
    assert res["gain"] == pytest.approx(1 - res["loss"] / res["baselines"][res["best_baseline"]])
    name = Path(res["file"]).stem
    assert name.startswith("unseen-") and name == eval_name(res["dataset"])
    assert read_eval(names_run, name) == json.loads((names_run / "eval" / f"{name}.json").read_text())
    assert set(read_evals(names_run)) == {name}


def test_baselines_are_fitted_on_the_runs_augmented_training_pieces(tiny_train_config, tiny_dataset, tmp_path):
    from pipeline.measures.baseline import NGramModel
    from pipeline.models.augment import augment_transpositions
    from pipeline.models.feeding import make_windows
    from pipeline.store.dataset import load_dataset
    run = tmp_path / "t"
    cfg = tiny_train_config(tiny_dataset, encoding="pitch", transpose=2, epochs=1, hidden=8)
    train(cfg, run)
    res = evaluate(run, EvalConfig(dataset=str(tiny_dataset), window=6, orders=(2,)), device="cpu")
    ds = augment_transpositions(load_dataset(tiny_dataset, "pitch"), 2)
    whole = load_dataset(tiny_dataset, "pitch")
    x, y = make_windows([ds.vocab.encode(s) for s in whole.sequences.values()], 6, 1).arrays()
    want = NGramModel(2, len(ds.vocab)).fit(ds.piece_arrays("train")).evaluate(x, y[:, -1])
    assert res["baselines"] == {"2-gram": pytest.approx(want["loss"])}
    assert res["unknown_tokens"] == 0 and res["pieces"] == len(whole.sequences)


def test_evaluate_refuses_what_it_cannot_score(names_run, unseen_dataset, tiny_dataset):
    with pytest.raises(DatasetError, match="no piece has"):
        evaluate(names_run, EvalConfig(dataset=str(unseen_dataset), window=40), device="cpu")
    with pytest.raises(DatasetError, match="chars"):
        run = names_run.parent / "chars-run"
        shutil.copytree(names_run, run)
        ckpt_path = run / "best.pt"
        import torch
        ckpt = torch.load(ckpt_path, weights_only=True)
        ckpt["encoding"] = "chars"
        torch.save(ckpt, ckpt_path)
        evaluate(run, EvalConfig(dataset=str(unseen_dataset)), device="cpu")
    shutil.rmtree(tiny_dataset)  # the baselines need the run's own training data
    with pytest.raises(DatasetError):
        evaluate(names_run, EvalConfig(dataset=str(unseen_dataset), window=5), device="cpu")


def test_evaluate_through_the_cli(unseen_piece, tmp_path, tiny_midi_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    unseen_piece(tmp_path / "other" / "a.mid")
    for folder, name in ((tiny_midi_dir, "tiny"), (tmp_path / "other", "other")):
        res = runner.invoke(main, ["extract", str(folder), "--name", name, "--workers", "1"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["train", "--data", "processed/tiny", "--encoding", "names", "--hidden", "8", "--layers", "1", "--window", "8",
                               "--epochs", "1", "--threads", "1", "--name", "r", "--transpose", "0"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["evaluate", "--run", "runs/r", "--data", "processed/other", "--window", "5",
                               "--device", "cpu"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for row in ("network, 5-token windows", "network, full context", "1-gram", "2-gram", "3-gram", "5-gram"):
        assert row in res.output
    other = f"runs/r/eval/{eval_name(tmp_path / 'processed' / 'other')}.json"
    assert res.output.strip().splitlines()[-1].endswith(f"-> {other}")
    assert "3 unknown tokens" in res.output
    res = runner.invoke(main, ["evaluate", "--run", "runs/r", "--data", "processed/none"])
    assert res.exit_code != 0 and "Traceback" not in res.output and "not a processed dataset" in res.output
    assert "Example" in runner.invoke(main, ["evaluate", "--help"]).output
    assert np.isfinite(json.loads((tmp_path / other).read_text())["full_context_loss"])


def test_evaluate_one_side_of_the_split(names_run, tiny_dataset):
    res = evaluate(names_run, EvalConfig(dataset=str(tiny_dataset), side="validation", window=8), device="cpu")
    split = json.loads((tiny_dataset / "split.json").read_text())
    assert res["pieces"] == len(split["validation"]) and res["unknown_tokens"] == 0
    assert res["file"].endswith(f"eval/{eval_name(tiny_dataset)}-validation.json") and "/tiny-" in res["file"]
    # the run's own validation measure scored every held-out target the same way
    cfg = json.loads((names_run / "config.json").read_text())
    assert res["targets"] == cfg["val_windows"]
    best = __import__("pandas").read_csv(names_run / "metrics.csv").iloc[0]
    assert res["full_context_loss"] == pytest.approx(best["val_full_loss"], rel=1e-5)
    assert res["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_a_names_run_trained_in_several_keys_is_scored_averaged_over_them_on_the_same_targets(
        tiny_train_config, tiny_dataset, unseen_dataset, tmp_path):
    run = tmp_path / "runs" / "keys"
    train(tiny_train_config(tiny_dataset, epochs=1, hidden=8, transpose=2), run)
    res = evaluate(run, EvalConfig(dataset=str(unseen_dataset), window=5), device="cpu")
    one = evaluate(run, EvalConfig(dataset=str(unseen_dataset), window=5, keys="one"), device="cpu")
    assert res["keys"] == 5 and one["keys"] == 1
    # unknown tokens cut the piece alike for every row, averaged or not
    assert res["targets"] == one["targets"] == sum(n - 5 for n in (10, 9, 24, 14))
    assert res["unknown_tokens"] == one["unknown_tokens"] == len(UNKNOWN_AT)
    for value in (res["loss"], res["full_context_loss"], res["one_key"]["loss"]):
        assert math.isfinite(value) and value > 0
    assert res["one_key"]["full_context_loss"] == pytest.approx(one["full_context_loss"])
    assert res["gain"] == pytest.approx(1 - res["loss"] / res["baselines"][res["best_baseline"]])
    assert "averaged over 5 keys" in eval_markdown(res) and "written key only" in eval_markdown(res)


def test_a_roll_file_keeps_its_own_split_and_evaluate_scores_nats_per_frame(roll_file, tiny_train_config, tmp_path):
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


def test_a_file_with_only_a_test_split_extracts_and_is_scored_whole(roll_file, tiny_run, tmp_path):
    run = tiny_run(tmp_path / "a", encoding="frames", window=10)
    src = roll_file(tmp_path / "only-test.json", {"test": 2})
    extract([src], ExtractConfig(name="held", out=str(tmp_path / "processed"), workers=1))
    res = evaluate(run, EvalConfig(dataset=str(tmp_path / "processed" / "held"), window=5))
    assert res["pieces"] == 2 and 70 < res["frames"] <= 80


def test_evaluate_defaults_on_frames_score_full_context_only_and_agree_with_nats_per_frame(roll_file, tiny_train_config,
                                                                                            tmp_path):
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


def test_evaluate_and_generate_average_over_the_keys_a_run_trained_in(tiny_train_config, tiny_dataset, tmp_path):
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
