"""``pitch``: the integer MIDI pitch of every note in onset order (chord notes low to high).

Tokens are the strings ``"0"`` … ``"127"`` so every encoding is a list of
strings; the vocabulary is fixed, so class index == pitch, and a regressor can
predict the number itself (``--task regress``).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from pipeline.codecs.names import OnsetCodec
from pipeline.codecs.onsets import GroupedNotes

_PITCH_TOKENS = [str(p) for p in range(128)]


class PitchCodec(OnsetCodec):
    name = "pitch"
    can_regress = True
    # leave one nocturne out, GRU 2x128 (docs/bench/learning.md): 30% of the inputs replaced by other tokens
    # of the batch beat the best n-gram by 13.4% instead of 11.8%; no other option moved it by half as much
    train_defaults: dict[str, Any] = {"token_noise": 0.3}

    def from_groups(self, groups: Iterable[Sequence[int]]) -> list[str]:
        return [_PITCH_TOKENS[p] for g in groups for p in sorted(g)]

    def tokens_per_group(self, group: Sequence[int]) -> int:
        return len(group)

    def grouped_tokens(self, groups: GroupedNotes) -> dict[str, list[str]]:
        offsets, bounds = groups.offsets.tolist(), groups.piece_bounds().tolist()
        flat = [_PITCH_TOKENS[p] for p in groups.pitches.tolist()]
        return {piece: flat[offsets[bounds[j]]:offsets[bounds[j + 1]]] for j, piece in enumerate(groups.pieces)}

    def to_groups(self, tokens: Sequence[str]) -> list[list[int]]:
        """Each token its own group: ``pitch`` tokens carry no chord information."""
        out = []
        for tok in tokens:
            p = int(tok)
            if not 0 <= p <= 127:
                raise ValueError(f"pitch out of range: {tok}")
            out.append([p])
        return out

    def vocabulary(self, sequences: Iterable[Sequence[str]]) -> list[str]:
        return list(_PITCH_TOKENS)
