"""The CLI through click's CliRunner: every command, clean one-line errors."""
import pytest
import torch
from click.testing import CliRunner

from cli import main
from pipeline.store.rundir import TrainConfig

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message for an absent GPU")


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def ok(runner, args):
    res = runner.invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def fails(runner, args, needle):
    res = runner.invoke(main, args)
    assert res.exit_code != 0
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output and needle in res.output, res.output
    return res.output


def test_help_has_examples(runner):
    for cmd in ("extract", "train", "generate", "render", "grid", "report", "compare", "tally", "heatmap"):
        out = ok(runner, [cmd, "--help"])
        assert "Example" in out and "python cli.py " + cmd in out


def test_pipeline_through_cli(runner, tiny_midi_dir):
    out = ok(runner, ["extract", str(tiny_midi_dir), "--name", "tiny", "--workers", "1"])
    assert out.strip().splitlines()[-1].endswith("-> processed/tiny/")
    out = ok(runner, ["train", "--data", "processed/tiny", "--cell", "rnn", "--layers", "1", "--hidden", "8",
                      "--window", "8", "--epochs", "2", "--threads", "1", "--name", "r"])
    assert "-> runs/r/" in out
    out = ok(runner, ["generate", "--run", "runs/r", "--count", "2", "--length", "10", "--temperature", "0.5,1"])
    assert "runs/r/samples/t0.5-s0/" in out and "runs/r/samples/t1-s0/" in out
    out = ok(runner, ["render", "runs/r/samples/t1-s0", "--audio", "wav"])
    assert __import__("pathlib").Path("runs/r/samples/t1-s0/sample_000.wav").exists()
    assert __import__("pathlib").Path("runs/r/samples/t1-s0/sample_000.png").exists()
    # resume of a finished run is a no-op that still reports
    out = ok(runner, ["train", "--data", "processed/tiny", "--name", "r", "--resume"])
    assert "trained 2 epochs" in out


def test_clean_errors(runner, tmp_path, tiny_midi_dir):
    (tmp_path / "junk.mid").write_bytes(b"junk")
    fails(runner, ["extract", str(tmp_path / "junk.mid"), "--name", "j"], "could be used")
    fails(runner, ["extract", str(tmp_path / "missing-folder")], "no .mid/.midi/.abc files")
    fails(runner, ["train", "--data", "processed/none"], "not a processed dataset")
    ok(runner, ["extract", str(tiny_midi_dir), "--name", "tiny", "--workers", "1"])
    fails(runner, ["train", "--data", "processed/tiny", "--cell", "transformer", "--epochs", "1"], "cell")
    fails(runner, ["train", "--data", "processed/tiny", "--encoding", "chars"], "no 'chars' encoding")
    fails(runner, ["train", "--data", "processed/tiny", "--task", "regress"], "--encoding pitch")
    fails(runner, ["train", "--data", "processed/tiny", "--layers", "two"], "--layers")
    fails(runner, ["train", "--data", "processed/tiny", "--encoding", "names", "--mode", "windows", "--window", "500",
                   "--epochs", "1"],
          "shorter than --window")
    fails(runner, ["generate", "--run", "runs/none"], "not a run folder")
    fails(runner, ["train", "--data", "processed/tiny", "--layers", "1,2"], "use `grid`")
    fails(runner, ["train", "--cell", "gru", "--lr", "inf"], "--lr must be a finite number")
    fails(runner, ["train", "--resume"], "--resume needs --name")
    fails(runner, ["train", "--resume", "--name", "nothing-here"], "not a run folder")


def test_render_skips_a_bad_midi_among_good_ones(runner, tmp_path, write_pm):
    folder = tmp_path / "mids"
    write_pm(folder / "good.mid", [(60, 0, 0.5), (64, 0.5, 1.0)])
    (folder / "bad.mid").write_bytes(b"not midi")
    res = runner.invoke(main, ["render", str(folder), "--audio", "none"])
    assert res.exit_code == 0 and "skipped" in res.output and "rendered 1 sequences (1 skipped)" in res.output
    assert (folder / "renders" / "good.png").exists()  # a folder of the tool's: never over the user's files
    fails(runner, ["render", str(folder / "bad.mid")], "nothing rendered")


# ------------------------------------------------------------------ the user's own commands, as written

@pytest.fixture
def raw_midi(write_pm, melody):
    """``raw_midi(folder)``: raw_midi/ as a user fills it: four short pieces (40 onsets each) dropped in."""
    def fill(folder):
        for k in range(4):
            write_pm(folder / "raw_midi" / f"piece{k}.mid", melody(40, k))
    return fill


def first_line(out: str) -> str:
    return out.strip().splitlines()[0]


def check_the_four_lines(runner, tmp_path, train_extra, raw_midi):
    from pathlib import Path
    raw_midi(tmp_path)
    out = ok(runner, ["extract", "raw_midi/"])
    assert out.strip().endswith("-> processed/raw_midi/")
    out = ok(runner, ["train", "--cell", "gru", "--layers", "4", "--hidden", "128", *train_extra])
    assert first_line(out) == ("training runs/raw_midi-gru-4x128 on the latest dataset, processed/raw_midi with the "
                               "frames encoding (the default: the notes sounding on a sixteenth grid, so samples keep "
                               "chords, rhythm and a key; --encoding names is the nocturne study's set-up)")
    assert "-> runs/raw_midi-gru-4x128/" in out
    out = ok(runner, ["render"])
    assert first_line(out) == ("sampling the latest run, runs/raw_midi-gru-4x128 with the generate defaults, "
                               "then rendering")
    samples = Path("runs/raw_midi-gru-4x128/samples/t0.7-s0")  # frames' own temperature
    for suffix in (".mid", ".wav", ".png"):
        assert len(list(samples.glob("sample_*" + suffix))) == 4, suffix
    out = ok(runner, ["render"])  # samples exist now: they are rendered again, not drawn again
    assert first_line(out).startswith(f"rendering {samples} (the latest samples of the latest run")
    out = ok(runner, ["compare"])
    assert first_line(out) == ("comparing the 1 finished runs trained on the latest dataset, processed/raw_midi: "
                               "raw_midi-gru-4x128")
    page = out.strip().rsplit("-> ", 1)[1]
    assert Path(page).name == "index.html" and Path(page).exists()


@pytest.mark.slow
def test_the_users_four_commands(runner, tmp_path, raw_midi):
    """extract raw_midi/, train, render, compare: as the user types them, with two epochs to stay quick."""
    check_the_four_lines(runner, tmp_path, ["--epochs", "2", "--threads", "1"], raw_midi)


@pytest.mark.slow
def test_the_users_four_commands_exactly_as_written(runner, tmp_path, raw_midi):
    check_the_four_lines(runner, tmp_path, [], raw_midi)


@pytest.mark.slow
def test_defaults_pick_the_latest_and_say_so(runner, tmp_path, raw_midi):
    """No --data / --run: the latest dataset or run, named in the first line; with none, one line saying what to do."""
    for args in (["train"], ["grid", "--cell", "gru,rnn"]):
        out = fails(runner, args, "no processed dataset under processed/; run `extract` first")
        assert len(out.strip().splitlines()) == 1
    for args in (["generate"], ["render"], ["heatmap"]):
        out = fails(runner, args, "no trained run under runs/; run `train` first")
        assert len(out.strip().splitlines()) == 1
    fails(runner, ["compare"], "no processed dataset under processed/")
    raw_midi(tmp_path)
    ok(runner, ["extract", "raw_midi/", "--name", "older", "--workers", "1"])
    ok(runner, ["extract", "raw_midi/", "--workers", "1"])
    fails(runner, ["compare"], "no finished run trained on the latest dataset processed/raw_midi")
    tiny = ["--layers", "1", "--hidden", "8", "--embed", "4", "--epochs", "1", "--threads", "1"]
    out = ok(runner, ["grid", "--cell", "gru,rnn", *tiny, "--workers", "1"])
    assert first_line(out) == "grid raw_midi-grid: 2 runs on the latest dataset, processed/raw_midi"
    out = ok(runner, ["train", "--cell", "lstm", *tiny])
    assert first_line(out).startswith("training runs/raw_midi-lstm-1x8 on the latest dataset, processed/raw_midi "
                                      "with the frames encoding (the default")
    out = ok(runner, ["generate", "--count", "1", "--length", "5"])
    assert first_line(out) == "using the latest run, runs/raw_midi-lstm-1x8"
    out = ok(runner, ["heatmap", "--length", "20"])
    assert first_line(out) == "using the latest run, runs/raw_midi-lstm-1x8"
    out = ok(runner, ["compare", "--temperature", "1", "--count", "1", "--length", "5"])
    assert first_line(out).startswith("comparing the 3 finished runs trained on the latest dataset, processed/raw_midi")


# ------------------------------------------------------------------ devices

@no_cuda
def test_an_absent_device_is_one_line_through_every_command(run, tmp_path, monkeypatch):
    """--device cuda on a machine without CUDA: one line, exit 1, nothing written."""
    monkeypatch.chdir(tmp_path)
    data = TrainConfig.from_dict(__import__("json").loads((run / "config.json").read_text())).dataset
    before = sorted(p.name for p in run.iterdir())
    commands = {
        "train": ["train", "--data", data, "--name", "gpu", "--epochs", "1"],
        "generate": ["generate", "--run", str(run), "--count", "1", "--length", "5"],
        "heatmap": ["heatmap", "--run", str(run), "--text", "C4 D4 E4"],
        "compare": ["compare", str(run), "--count", "1", "--length", "5", "--out", "page"],
        "grid": ["grid", "--data", data, "--hidden", "8,16", "--epochs", "1", "--name", "g"],
        "render": ["render", "--run", str(run)],  # no samples yet: it samples first (and says so first)
    }
    for name, args in commands.items():
        res = CliRunner().invoke(main, args + ["--device", "cuda"])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1 + (name == "render") and "Traceback" not in res.output, \
            (name, res.output)
        assert lines[-1].startswith("Error: --device cuda:") and "no CUDA GPU" in lines[-1] and "--device cpu" in lines[-1]
    assert sorted(p.name for p in run.iterdir()) == before  # no samples, no heatmaps
    assert not any(tmp_path.iterdir())  # no run, page or grid folder
