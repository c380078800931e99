"""store/samples.py: a samples folder and its run."""

import json
from pathlib import Path

from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import RenderConfig, render_samples
from pipeline.stages.train import train


def test_a_samples_folder_renders_from_any_working_directory(tiny_train_config, tiny_dataset, tmp_path, monkeypatch):
    """samples.json stores its run relative to itself: a moved project, or another cwd, still renders."""
    import shutil
    project = tmp_path / "project"
    train(tiny_train_config(tiny_dataset, epochs=1), project / "runs" / "r")
    monkeypatch.chdir(project)
    folder = generate(Path("runs/r"), GenerateConfig(count=2, length=10)).folder  # drawn with a relative path
    assert not Path(json.loads((folder / "samples.json").read_text())["run"]).is_absolute()
    moved = tmp_path / "moved"
    shutil.move(str(project), str(moved))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = render_samples(moved / "runs" / "r" / "samples" / folder.name, RenderConfig(audio="none", piano_roll=False))
    assert [f["midi"] for f in out.files] == ["sample_000.mid", "sample_001.mid"]
    assert (moved / "runs" / "r" / "samples" / folder.name / "render.json").exists()
