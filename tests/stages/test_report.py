"""The report stage: the summary table of a folder of runs."""

import pandas as pd
import pytest

from pipeline.stages.report import summary_table, write_report
from pipeline.stages.train import train
from pipeline.store.rundir import TrainConfig


def test_summary_table_columns_and_empty_input():
    def record(name, epochs, losses, status="finished"):
        history = pd.DataFrame({"epoch": range(1, len(losses) + 1), "train_loss": losses, "val_loss": losses,
                                "val_acc": [0.5] * len(losses), "seconds": [1.0] * len(losses)})
        options = {**TrainConfig(cell="lstm", epochs=epochs).__dict__, "parameters": 100}
        return {"run": name, "config": options, "options": options, "status": status, "error": "",
                "has_checkpoint": True, "history": history}
    table = summary_table([record("a", 5, [3.0, 2.0, 2.5]), record("b", 9, [1.0], "incomplete")])
    assert list(table["run"]) == ["b", "a"]  # best validation loss first
    assert list(table["epochs"]) == [9, 5] and list(table["epochs_run"]) == [1, 3]  # option vs epochs run
    assert list(table["best_epoch"]) == [1, 2] and "error" not in table and "val_mae" not in table
    empty = summary_table([])
    assert empty.empty and {"run", "val_loss", "status"} <= set(empty.columns)


def test_report_shows_both_measures_at_each_runs_best_epoch(tiny_train_config, tiny_dataset, tmp_path):
    folder = tmp_path / "runs"
    a = train(tiny_train_config(tiny_dataset, epochs=2), folder / "a")
    b = train(tiny_train_config(tiny_dataset, epochs=2, mode="windows", hidden=8), folder / "b")
    res = write_report(folder)
    t = res["table"].set_index("run")
    for name, s in (("a", a), ("b", b)):
        assert t.loc[name, "val_full_loss"] == pytest.approx(s.val_full_loss)
        assert t.loc[name, "val_loss"] == pytest.approx(s.val_loss) and t.loc[name, "best_epoch"] == s.best_epoch
    assert list(res["table"]["val_full_loss"]) == sorted(res["table"]["val_full_loss"])
    assert "val_full_acc" in (folder / "summary.md").read_text()
