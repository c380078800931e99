"""The CLI through click's CliRunner: every command, clean one-line errors."""
import pytest
from click.testing import CliRunner

from cli import main


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
    for cmd in ("extract", "train", "generate", "render", "grid", "report", "compare", "heatmap"):
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
    fails(runner, ["extract", str(tmp_path / "missing-folder")], "no .mid/.midi/.abc files found")
    fails(runner, ["train", "--data", "processed/none"], "not a processed dataset")
    ok(runner, ["extract", str(tiny_midi_dir), "--name", "tiny", "--workers", "1"])
    fails(runner, ["train", "--data", "processed/tiny", "--cell", "transformer", "--epochs", "1"], "cell")
    fails(runner, ["train", "--data", "processed/tiny", "--encoding", "chars"], "no 'chars' encoding")
    fails(runner, ["train", "--data", "processed/tiny", "--task", "regress"], "--encoding pitch")
    fails(runner, ["train", "--data", "processed/tiny", "--layers", "two"], "--layers")
    fails(runner, ["train", "--data", "processed/tiny", "--mode", "windows", "--window", "500", "--epochs", "1"],
          "shorter than --window")
    fails(runner, ["generate", "--run", "runs/none"], "not a run folder")
    fails(runner, ["train", "--data", "processed/tiny", "--layers", "1,2"], "use `grid`")
    fails(runner, ["train", "--cell", "gru", "--lr", "inf"], "--lr must be a finite number")
    fails(runner, ["train", "--resume"], "--resume needs --name")
    fails(runner, ["train", "--resume", "--name", "nothing-here"], "not a run folder")


def test_render_skips_a_bad_midi_among_good_ones(runner, tmp_path):
    from conftest import write_pm
    folder = tmp_path / "mids"
    write_pm(folder / "good.mid", [(60, 0, 0.5), (64, 0.5, 1.0)])
    (folder / "bad.mid").write_bytes(b"not midi")
    res = runner.invoke(main, ["render", str(folder), "--audio", "none"])
    assert res.exit_code == 0 and "skipped" in res.output and "rendered 1 sequences (1 skipped)" in res.output
    assert (folder / "good.png").exists()
    fails(runner, ["render", str(folder / "bad.mid")], "nothing rendered")
