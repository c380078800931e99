"""Readers of the files a user brings: MIDI, ABC, the corpora bundled with music21."""
