"""Listen to MIDI: render audio files with FluidSynth or a built-in synth.

Audio is rendered by the FluidSynth command-line program with a General MIDI
SoundFont when both are installed (Debian: ``fluidsynth`` and
``fluid-soundfont-gm``), and otherwise by pretty_midi's built-in sine-wave
synthesiser, in which case :class:`AudioResult` carries a one-line ``notice``
saying so. The output format follows the file suffix (``.wav``, ``.flac``,
``.ogg``); every format is written through ``soundfile`` (libsndfile).

Length of the audio: FluidSynth keeps rendering until every voice has died
away, which for piano with reverb is 2-3 s past the last note-off. Both synths
are cut to ``get_end_time() + tail`` seconds (``tail`` = 1 s by default) with a
short fade-out, so the audio is never more than ``tail`` seconds longer than
the MIDI and pieces rendered by either synth have the same length.

Piano-roll pictures of the same MIDI are drawn by :mod:`pipeline.media.pianoroll`.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile

from pipeline.core.errors import AudioError, ConfigError, MidiReadError
from pipeline.core.fsutil import scratch_dir
from pipeline.core.procs import child_dies_with_parent, run_with_timeout
from pipeline.inputs.midi_io import read_midi

SOUNDFONT_ENV = "MUSICRNN_SOUNDFONT"

#: Searched in order after ``$MUSICRNN_SOUNDFONT``. The first two come from
#: Debian/Ubuntu's ``fluid-soundfont-gm``; the rest are the usual places other
#: distributions and Homebrew put a default General MIDI SoundFont.
STANDARD_SOUNDFONTS: tuple[Path, ...] = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/sounds/sf3/default-GM.sf3"),
    Path("/usr/local/share/soundfonts/default.sf2"),
    Path("/opt/homebrew/share/soundfonts/default.sf2"),
)

#: suffix -> (libsndfile format, subtype). 16-bit PCM is plenty for listening
#: and halves the size of float files.
FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}

SYNTHS = ("auto", "fluidsynth", "builtin")

#: -1 dBFS: headroom so that 16-bit conversion and lossy encoders do not clip.
PEAK = 10 ** (-1 / 20)

#: Fade applied where the render is cut, so the cut does not click.
FADE_SECONDS = 0.05

#: Frames handed to libsndfile per call (about 1.5 s at 44.1 kHz).
WRITE_BLOCK = 1 << 16

#: Seconds FluidSynth may take, at least, before it is stopped (more for long pieces); the
#: environment variable overrides it.
TIMEOUT_ENV = "MUSICRNN_FLUIDSYNTH_TIMEOUT"


@dataclass(frozen=True)
class AudioResult:
    """What :func:`midi_to_audio` wrote.

    Attributes
    ----------
    path : Path
        The audio file.
    seconds : float
        Duration of the audio in seconds.
    synth : str
        ``'fluidsynth'`` or ``'builtin'``.
    sample_rate : int
        Samples per second.
    channels : int
        2 for FluidSynth (stereo), 1 for the built-in synth.
    notice : str or None
        One line for the user when the result is not what they might expect
        (fallback synth used, drum notes left out); ``None`` otherwise.
    """

    path: Path
    seconds: float
    synth: str
    sample_rate: int
    channels: int
    notice: str | None = None


def find_soundfont() -> Path | None:
    """Locate a General MIDI SoundFont.

    ``$MUSICRNN_SOUNDFONT`` wins when set; otherwise the first existing file of
    :data:`STANDARD_SOUNDFONTS`.

    Returns
    -------
    Path or None
        The SoundFont, or ``None`` when none is installed.

    Raises
    ------
    ConfigError
        ``$MUSICRNN_SOUNDFONT`` is set but names no file; falling back to
        another SoundFont would hide the typo.
    """
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"${SOUNDFONT_ENV}={env} is not a file")
        return path
    return next((p for p in STANDARD_SOUNDFONTS if p.is_file()), None)


def find_fluidsynth() -> str | None:
    """Path of the ``fluidsynth`` program on ``$PATH``, or ``None``."""
    return shutil.which("fluidsynth")


# --------------------------------------------------------------------------- audio


def synthesize_builtin(midi: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    """Render with pretty_midi's sine-wave synth, peak-normalised to -1 dBFS.

    Parameters
    ----------
    midi : pretty_midi.PrettyMIDI
    sample_rate : int

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
        Mono audio, ``n_samples = sample_rate * (get_end_time() + 1)`` roughly
        (pretty_midi adds one second). Drum tracks are silent: a sine synth
        has no drum sounds. All zeros when there is nothing to play.
    """
    # Summed here rather than via PrettyMIDI.synthesize(), whose normalisation
    # divides by zero (NaN audio) when only drum tracks have notes.
    waves = [inst.synthesize(fs=sample_rate) for inst in midi.instruments if not inst.is_drum]
    n = max((len(w) for w in waves), default=int(sample_rate * (midi.get_end_time() + 1)))
    out = np.zeros(n, dtype=np.float64)
    for w in waves:
        out[: len(w)] += w
    peak = np.abs(out).max(initial=0.0)
    if peak > 0:
        out *= PEAK / peak
    return out.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _supports_quiet(binary: str) -> bool:
    """Whether this FluidSynth knows ``-q`` (added in 2.x; 1.x would reject it)."""
    try:
        proc = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, preexec_fn=child_dies_with_parent)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--quiet" in proc.stdout + proc.stderr


def synthesize_fluidsynth(
    midi_path: str | Path,
    sample_rate: int,
    soundfont: Path,
    *,
    gain: float = 1.0,
    binary: str = "fluidsynth",
    timeout: float = 600.0,
    scratch: Path | None = None,
) -> np.ndarray:
    """Render with the FluidSynth program (fast render to a temporary file).

    Runs ``fluidsynth -ni [-q] -F tmp.wav -O float -r RATE -g GAIN sf2 in.mid``.
    The file is rendered as 32-bit float so that loud passages are not clipped
    before we get to scale them.

    Parameters
    ----------
    midi_path : str or Path
    sample_rate : int
    soundfont : Path
    gain : float
        FluidSynth master gain. Its own default, 0.2, is very quiet; at 1.0 the
        Chopin nocturne Op. 9 No. 2 peaks at about -5 dBFS.
    binary : str
        The fluidsynth executable.
    timeout : float
        Seconds before the render is abandoned (FluidSynth is killed; it also dies with this process).
    scratch : Path or None
        Folder of the tool's that holds the temporary render; default: the MIDI's folder.

    Returns
    -------
    np.ndarray, shape (n_samples, 2), float32
        Stereo audio including FluidSynth's full release/reverb tail.

    Raises
    ------
    AudioError
        FluidSynth failed, timed out, wrote nothing, or wrote only silence
        (it exits 0 even when it cannot load the SoundFont).
    """
    # the scratch folder lies beside the output (a folder of the tool's), never in the system's
    # temporary directory: a killed render leaves it there, and the next render removes it
    with scratch_dir(Path(scratch or Path(midi_path).parent), ".musicrnn-audio") as tmp:
        wav = Path(tmp) / "render.wav"
        # -F must come before the SoundFont and MIDI arguments; absolute paths
        # keep a file name starting with '-' from being read as an option.
        cmd = [binary, "-ni"] + (["-q"] if _supports_quiet(binary) else [])
        cmd += ["-F", str(wav), "-O", "float", "-T", "wav",
                "-r", str(sample_rate), "-g", str(gain),
                str(Path(soundfont).resolve()), str(Path(midi_path).resolve())]
        returncode, log = run_with_timeout(cmd, timeout, Path(tmp) / "fluidsynth.log")
        if returncode is None:
            raise AudioError(f"fluidsynth took longer than {timeout:.0f} s on {midi_path} (stopped)")
        errors = [ln for ln in log.splitlines() if "error" in ln.lower()]
        first_error = errors[0].strip() if errors else ""
        if returncode != 0 or not wav.is_file() or wav.stat().st_size == 0:
            raise AudioError(
                f"fluidsynth failed on {midi_path} (exit {returncode})"
                + (f": {first_error}" if first_error else "")
            )
        audio, _ = soundfile.read(str(wav), dtype="float32", always_2d=True)
    if not np.any(audio):
        raise AudioError(
            f"fluidsynth rendered only silence for {midi_path} with {soundfont}"
            + (f": {first_error}" if first_error else "")
        )
    return audio


def trim_tail(audio: np.ndarray, sample_rate: int, end_time: float, tail: float) -> np.ndarray:
    """Cut audio to ``end_time + tail`` seconds, fading out the last 50 ms.

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,) or (n_samples, n_channels)
    sample_rate : int
    end_time : float
        Seconds; the MIDI's last event.
    tail : float
        Seconds of release/reverb to keep after ``end_time``.

    Returns
    -------
    np.ndarray, same shape as ``audio`` but at most
    ``round(sample_rate * (end_time + tail))`` samples long. Audio already
    shorter is returned unchanged (never padded).
    """
    keep = int(round(sample_rate * (end_time + tail)))
    if len(audio) <= keep:
        return audio
    out = audio[:keep].copy()
    n_fade = min(keep, int(sample_rate * FADE_SECONDS))
    if n_fade:
        ramp = np.linspace(1.0, 0.0, n_fade, dtype=out.dtype)
        out[keep - n_fade:] *= ramp if out.ndim == 1 else ramp[:, None]
    return out


def _audio_format(out_path: Path) -> tuple[str, str]:
    """(libsndfile format, subtype) for the suffix of ``out_path``, or ConfigError."""
    try:
        return FORMATS[out_path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"unsupported audio format {out_path.suffix or '(no suffix)'!r} for {out_path};"
            f" use one of {', '.join(FORMATS)}"
        ) from None


def write_audio(audio: np.ndarray, sample_rate: int, out_path: str | Path) -> Path:
    """Write float audio in the format given by the suffix of ``out_path``.

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,) or (n_samples, n_channels), values in [-1, 1]
    sample_rate : int
    out_path : str or Path
        ``.wav``, ``.flac`` or ``.ogg``; parent folders are created.

    Raises
    ------
    ConfigError
        Unsupported suffix.
    AudioError
        libsndfile could not write the file.
    """
    out_path = Path(out_path)
    fmt = _audio_format(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    try:
        # in blocks: libsndfile's Vorbis encoder crashes (SIGSEGV) when handed ~95 s or more at once
        with soundfile.SoundFile(str(out_path), "w", sample_rate, channels, format=fmt[0], subtype=fmt[1]) as f:
            for i in range(0, len(audio), WRITE_BLOCK):
                f.write(audio[i:i + WRITE_BLOCK])
    except (RuntimeError, OSError) as exc:  # LibsndfileError is a RuntimeError
        raise AudioError(f"cannot write {out_path}: {exc}") from exc
    return out_path


def midi_to_audio(
    midi_path: str | Path,
    out_path: str | Path,
    *,
    sample_rate: int = 44100,
    soundfont: str | Path | None = None,
    synth: str = "auto",
    gain: float = 1.0,
    tail: float = 1.0,
) -> AudioResult:
    """Render a MIDI file to an audio file.

    Parameters
    ----------
    midi_path : str or Path
    out_path : str or Path
        ``.wav``, ``.flac`` or ``.ogg``.
    sample_rate : int
        8000-96000 (FluidSynth's range).
    soundfont : str, Path or None
        SoundFont for FluidSynth; ``None`` means :func:`find_soundfont`.
    synth : {'auto', 'fluidsynth', 'builtin'}
        ``'auto'`` uses FluidSynth when the program and a SoundFont exist and
        the built-in synth otherwise (saying so in ``notice``).
    gain : float
        FluidSynth master gain. FluidSynth output is only ever scaled down, to
        -1 dBFS when it would clip, so pieces keep their relative loudness.
        The built-in synth is always peak-normalised to -1 dBFS.
    tail : float
        Seconds kept after the MIDI's end time (see the module docstring).

    Returns
    -------
    AudioResult

    Raises
    ------
    MidiReadError
        The MIDI file cannot be parsed or has no notes.
    ConfigError
        Bad ``synth``, ``sample_rate``, ``tail`` or output suffix.
    AudioError
        ``synth='fluidsynth'`` without FluidSynth or a SoundFont, FluidSynth
        failed, or the file could not be written.
    """
    if synth not in SYNTHS:
        raise ConfigError(f"unknown synth {synth!r}; use one of {', '.join(SYNTHS)}")
    if not 8000 <= int(sample_rate) <= 96000:
        raise ConfigError(f"sample rate {sample_rate} is outside 8000-96000 Hz")
    if tail < 0:
        raise ConfigError(f"tail must be >= 0 seconds, got {tail}")
    out_path = Path(out_path)
    _audio_format(out_path)  # checked now so that a typo does not cost a full render

    midi = read_midi(midi_path)
    n_notes = sum(len(inst.notes) for inst in midi.instruments)
    if n_notes == 0:
        raise MidiReadError(f"MIDI file {midi_path} has no notes to render")
    end_time = midi.get_end_time()

    binary, sf2, missing = None, None, []
    if synth != "builtin":
        binary = find_fluidsynth()
        sf2 = Path(soundfont) if soundfont is not None else find_soundfont()
        if sf2 is not None and not sf2.is_file():
            raise AudioError(f"SoundFont {sf2} does not exist")
        missing = [what for what, found in (("the fluidsynth program", binary),
                                            ("a SoundFont", sf2)) if found is None]
    if synth == "fluidsynth" and missing:
        raise AudioError(f"cannot use FluidSynth: {' and '.join(missing)} not found")

    notice = None
    if synth == "builtin" or missing:
        audio = synthesize_builtin(midi, sample_rate)
        used = "builtin"
        parts = []
        if binary is None and synth != "builtin":
            parts.append("FluidSynth is not installed (install it: apt install fluidsynth fluid-soundfont-gm, "
                         "or brew install fluid-synth); used the built-in sine synth instead")
        elif missing:
            parts.append(f"no General MIDI SoundFont found (install one: apt install fluid-soundfont-gm, or set "
                         f"${SOUNDFONT_ENV} to an .sf2 file); used the built-in sine synth instead")
        n_drums = sum(len(i.notes) for i in midi.instruments if i.is_drum)
        if n_drums:
            parts.append(f"{n_drums} of {n_notes} notes are drums, which the built-in synth leaves silent")
        notice = "; ".join(parts) or None
    else:
        timeout = float(os.environ.get(TIMEOUT_ENV) or max(120.0, 4 * end_time))
        try:
            audio = synthesize_fluidsynth(midi_path, sample_rate, sf2, gain=gain, binary=binary,
                                          timeout=timeout, scratch=out_path.parent)
            used = "fluidsynth"
        except AudioError as exc:
            if synth == "fluidsynth":
                raise
            audio, used = synthesize_builtin(midi, sample_rate), "builtin"
            notice = f"{exc}; used the built-in sine synth instead"
        if used == "fluidsynth" and float(np.abs(audio).max()) > PEAK:
            audio = audio * np.float32(PEAK / float(np.abs(audio).max()))

    audio = trim_tail(audio, sample_rate, end_time, tail)
    write_audio(audio, sample_rate, out_path)
    return AudioResult(
        path=out_path,
        seconds=len(audio) / sample_rate,
        synth=used,
        sample_rate=int(sample_rate),
        channels=1 if audio.ndim == 1 else audio.shape[1],
        notice=notice,
    )


def audio_stats(path: str | Path) -> dict[str, float]:
    """Duration and level of an audio file.

    Returns
    -------
    dict
        ``seconds`` (duration), ``rms`` and ``peak`` (over all samples and
        channels, full scale = 1.0), ``sample_rate`` and ``channels``. An empty
        file gives ``seconds = rms = peak = 0``.

    Raises
    ------
    AudioError
        The file cannot be read.
    """
    try:
        audio, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, OSError) as exc:  # LibsndfileError is a RuntimeError
        raise AudioError(f"cannot read audio file {path}: {exc}") from exc
    return {
        "seconds": len(audio) / rate,
        "rms": float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0,
        "peak": float(np.abs(audio).max()) if audio.size else 0.0,
        "sample_rate": int(rate),
        "channels": int(audio.shape[1]),
    }
