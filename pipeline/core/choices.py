"""The model's own choices, defined once and torch-free: the run folder validates them, the model builds them."""
from __future__ import annotations

CELL_NAMES = ("rnn", "lstm", "gru")           # torch.nn.RNN, LSTM, GRU
STACKS = ("residual", "plain")                # layers added to their input (GNMT), or torch's plain stack
TASKS = ("classify", "regress")               # next token as classes, or the next pitch as a number
MODES = ("tbptt", "windows")                  # state carried over a piece's chunks, or the study's windows
OPTIMIZER_NAMES = ("adam", "rmsprop", "adagrad")
STUDY_WINDOW = 30  # the nocturne study's measure: the next token after every 30-token window
# Fields that change how fast a run goes, not what it learns: left out of a run's identity.
EXECUTION_ONLY = ("threads", "device")
DEVICES = ("auto", "cpu", "cuda", "mps")
