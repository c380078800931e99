"""Named exceptions, one per failure a user can cause.

The CLI turns every :class:`PipelineError` into a one-line message; anything
else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """Base class for errors caused by the user's input or environment."""


class MidiReadError(PipelineError):
    """A MIDI file could not be parsed (corrupt, truncated, not MIDI, empty)."""


class AbcParseError(PipelineError):
    """An ABC tune could not be parsed."""


class RollReadError(PipelineError):
    """A piano-roll file (.mat, .pickle, .json) could not be read, or holds something other than rolls."""


class NoUsableInputError(PipelineError):
    """Not one of the given input files could be used."""


class DatasetError(PipelineError):
    """A processed dataset folder is missing or inconsistent."""


class RunError(PipelineError):
    """A run folder is missing, incomplete, or incompatible with the request."""


class ConfigError(PipelineError):
    """An option value or combination of options is invalid."""


class AudioError(PipelineError):
    """Audio could not be rendered or written (FluidSynth failed, SoundFont missing)."""


class EngraveError(PipelineError):
    """Sheet music could not be drawn (no engraver installed, or the engraver failed)."""


class FolderInUseError(PipelineError):
    """Another process holds the lock of a dataset or run folder."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, re-raised by a stage that can say what was kept and how to go on."""


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: message`` of an exception on one line, at most ``limit`` characters of message."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PageError(PipelineError):
    """A comparison page folder is missing, or is not the listening test the request needs."""


class AnswersError(PipelineError):
    """A listener's answer file is not JSON, not an answer file, malformed, or answers another page."""
