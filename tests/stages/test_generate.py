"""The generate stage: sampling from a run folder, chars tunes, devices."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.codecs import END, START
from pipeline.core.errors import ConfigError, RunError
from pipeline.inputs import abc_io
from pipeline.measures.abc_eval import score_sample_folder
from pipeline.media.engrave import available_engraver
from pipeline.models.network import resolve_device
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import RenderConfig, render_samples
from pipeline.stages.train import train

SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"

# --------------------------------------------------------------------------- sampling


def test_tiny_chars_model_samples_stop_at_end_or_limit(chars_run):
    res = generate(chars_run, GenerateConfig(count=6, length=40, temperature=1.0, primer="start", seed=3))
    assert res.primer == [START] and len(res.samples) == 6
    for s in res.samples:
        assert len(s) <= 40 and END not in s[:-1]
        assert s[-1] == END or len(s) == 40


def test_forced_end_gives_empty_ended_tunes(ends_at_once):
    res = generate(ends_at_once, GenerateConfig(count=3, length=500, primer="start"))
    assert res.samples == [[END]] * 3
    table = score_sample_folder(res.folder)
    assert table["ended"].all() and (table["length"] == 0).all() and not table["parses"].any()
    assert (table["error"] == "empty tune text").all()


# --------------------------------------------------------------------------- CLI

def test_cli_generate_chars_writes_tunes_validity_and_sheet_music(ends_at_once, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    primer = SCALE.replace("\n", "\\n")  # as typed in a shell
    res = CliRunner().invoke(main, ["generate", "--run", str(ends_at_once), "--count", "2", "--temperature", "0.5,1",
                                    "--primer-tokens", primer], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert "validity_summary.csv" in lines[-1] and "| T " in res.output
    assert "primer written as the model reads tunes" in res.output
    engraver = available_engraver()
    for tag in ("t0.5-s0", "t1-s0"):
        folder = ends_at_once / "samples" / tag
        assert json.loads((folder / "samples.json").read_text())["config"]["length"] == 1000  # chars default
        for i in range(2):
            # the primer as the model reads tunes (no X:/T:), made a tunebook entry again in the file
            tune = abc_io.music_text(SCALE)
            assert (folder / f"sample_{i:03d}.abc").read_text() == f"X:{i + 1}\nT:Sample {i}\n{tune}\n"
            assert (folder / f"sample_{i:03d}.mid").exists()
            assert (folder / f"sample_{i:03d}.svg").exists() == (engraver is not None)
        table = pd.read_csv(folder / "validity.csv")
        assert len(table) == 2 and table["parses"].all() and table["to_midi"].all() and table["ended"].all()
        assert (table["length"] == len(abc_io.music_text(SCALE))).all()
    summary = pd.read_csv(ends_at_once / "samples" / "validity_summary.csv")
    assert summary["temperature"].tolist() == [0.5, 1.0] and (summary["pct_parses"] == 100).all()
    assert (ends_at_once / "samples" / "validity_summary.md").read_text().startswith("| T ")

    # `render` on a chars folder: MIDI for the playable tunes, the primer text included
    files = render_samples(ends_at_once / "samples" / "t1-s0", RenderConfig(audio="none", piano_roll=False)).files
    assert [f["midi"] for f in files] == ["sample_000.mid", "sample_001.mid"]

    res = CliRunner().invoke(main, ["generate", "--run", str(ends_at_once), "--count", "1", "--no-engrave",
                                    "--no-render", "--primer-tokens", primer, "--seed", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    folder = ends_at_once / "samples" / "t1-s1"
    assert (folder / "sample_000.abc").exists() and (folder / "validity.csv").exists()
    assert not (folder / "sample_000.mid").exists() and not (folder / "sample_000.svg").exists()


def test_sampling_on_an_explicit_device_matches_auto(run, tmp_path):
    if resolve_device("auto").type != "cpu":
        pytest.skip("auto is an accelerator here: another random stream")
    a = generate(run, GenerateConfig(count=3, length=20, seed=4), tmp_path / "a", device="cpu")
    b = generate(run, GenerateConfig(count=3, length=20, seed=4), tmp_path / "b", device="auto")
    assert a.samples == b.samples


def test_bad_generate_options(tiny_train_config, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    with pytest.raises(ConfigError):
        generate(run, GenerateConfig(primer="tokens", primer_tokens=("Z9",)))
    with pytest.raises(ConfigError):
        generate(run, GenerateConfig(primer="start"))
    with pytest.raises(RunError):
        generate(tmp_path / "nope", GenerateConfig())


def test_run_folder_stands_alone_without_its_dataset(tiny_train_config, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    shutil.rmtree(tiny_dataset)
    res = generate(run, GenerateConfig(count=2, length=10))
    assert len(res.primer) == 8
    assert render_samples(res.folder, RenderConfig(audio="none", piano_roll=False)).files[0]["midi"] == "sample_000.mid"


def test_generate_never_overwrites_samples_drawn_with_other_options(tiny_train_config, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, epochs=1), run)
    a = generate(run, GenerateConfig(count=2, length=5))
    assert generate(run, GenerateConfig(count=2, length=5)).folder == a.folder  # same options: same place
    b = generate(run, GenerateConfig(count=3, length=7))
    assert str(b.folder) == str(a.folder) + "-2"
    assert len(json.loads((tmp_path / "run/samples/t1-s0/samples.json").read_text())["samples"]) == 2
    assert len(generate(run, GenerateConfig(count=2)).samples[0]) == 300  # note models: 300 by default
