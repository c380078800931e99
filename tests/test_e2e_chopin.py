"""One realistic end-to-end run on the five shared Chopin nocturnes."""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main


@pytest.fixture
def ok(tmp_path, monkeypatch):
    """``ok(args)``: the CLI run in ``tmp_path``, which must succeed; its output."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner()

    def run(args):
        res = r.invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output
    return run


@pytest.mark.slow
def test_nocturnes_end_to_end(chopin, tmp_path, ok):
    ok(["extract", str(chopin), "--name", "noct"])
    m = json.loads((tmp_path / "processed/noct/manifest.json").read_text())
    assert m["totals"]["files_ok"] == 5 and m["totals"]["notes"] > 8000
    split = json.loads((tmp_path / "processed/noct/split.json").read_text())
    assert len(split["validation"]) == 1 and len(split["train"]) == 4
    vocab = json.loads((tmp_path / "processed/noct/names/vocab.json").read_text())
    assert 500 < len(vocab) < 2000  # single notes plus the chords Chopin writes

    ok(["train", "--data", "processed/noct", "--encoding", "names", "--cell", "gru", "--layers", "2", "--hidden", "32",
        "--epochs", "2", "--threads", "2", "--name", "g"])
    metrics = pd.read_csv(tmp_path / "runs/g/metrics.csv")
    assert len(metrics) == 2 and metrics["val_loss"].iloc[-1] < metrics["val_loss"].iloc[0] + 0.5

    ok(["generate", "--run", "runs/g", "--count", "2", "--length", "60"])
    ok(["render", "runs/g/samples/t1-s0", "--audio", "wav"])
    from pipeline.media.audio import audio_stats
    from pipeline.inputs.midi_io import midi_file_to_notes
    notes, _ = midi_file_to_notes(tmp_path / "runs/g/samples/t1-s0/sample_000.mid")
    assert len(notes) >= 90  # 30-token primer + 60 new tokens, chords counting several notes
    stats = audio_stats(tmp_path / "runs/g/samples/t1-s0/sample_000.wav")
    assert stats["seconds"] > 5 and stats["rms"] > 1e-3


@pytest.mark.slow
def test_nocturnes_with_the_defaults_render_in_time_and_in_chords(chopin, tmp_path, ok):
    """The default path on the real files: frames, its temperature, samples that carry their own rhythm."""
    ok(["extract", str(chopin), "--name", "noct"])
    out = ok(["train", "--cell", "gru", "--layers", "1", "--hidden", "32", "--epochs", "1", "--threads", "2"])
    assert "with the frames encoding (the default" in out.splitlines()[0]
    ok(["render", "--audio", "none"])
    from pipeline.inputs.midi_io import midi_file_to_notes

    folder = tmp_path / "runs/noct-gru-1x32/samples/t0.7-s0"
    notes, _ = midi_file_to_notes(folder / "sample_000.mid")
    onsets = notes["start"].round(3)
    assert len(notes) > 20 and onsets.nunique() < len(notes)  # some notes start together: chords
    assert (folder / "sample_000.png").exists()
