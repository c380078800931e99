"""The render stage: MIDI from a samples folder, with the corpus's timing or fixed beats."""

import json

from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import RenderConfig, render_samples
from pipeline.stages.train import train


def test_generate_and_render_from_run_folder_only(tiny_train_config, tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset), run)
    res = generate(run, GenerateConfig(count=3, length=25, temperature=0.9, seed=5))
    assert len(res.samples) == 3 and all(len(s) == 25 for s in res.samples)
    again = generate(run, GenerateConfig(count=3, length=25, temperature=0.9, seed=5))
    assert again.samples == res.samples
    # the primer is the opening of a held-out piece
    split = json.loads((tiny_dataset / "split.json").read_text())
    seqs = json.loads((tiny_dataset / "names" / "sequences.json").read_text())["pieces"]
    assert res.primer == seqs[split["validation"][0]][:8]
    out = render_samples(res.folder, RenderConfig(audio="none", piano_roll=False))
    assert [f["midi"] for f in out.files] == [f"sample_{i:03d}.mid" for i in range(3)]
    from pipeline.inputs.midi_io import midi_file_to_notes
    notes, _ = midi_file_to_notes(f"{res.folder}/sample_000.mid")
    durations = (notes["end"] - notes["start"]).round(3)
    assert durations.nunique() > 1, "timing drawn from the corpus, not all notes the same length"
    render_samples(res.folder, RenderConfig(audio="none", piano_roll=False, fixed_beats=0.5))
    notes, _ = midi_file_to_notes(f"{res.folder}/sample_000.mid")
    assert (notes["end"] - notes["start"]).round(3).nunique() == 1
