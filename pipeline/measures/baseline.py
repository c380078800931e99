"""N-gram baselines over the same tokens and split as the neural models.

A model that does not beat these has learnt nothing beyond local statistics.
Smoothing is interpolated Witten-Bell, which needs no tuned parameter: each
order's weight comes from how many distinct tokens followed its context.
One fitted model both scores (:meth:`NGramModel.evaluate`) and writes
(:meth:`NGramModel.sample`), so a baseline's samples come from the very
distribution its loss measures.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Sequence

import numpy as np


class NGramModel:
    """Interpolated Witten-Bell n-gram model over token ids.

    Parameters
    ----------
    order : n (2 = bigram, 3 = trigram, ...).
    vocab_size : number of distinct ids; unseen ids get the uniform floor.
    """

    def __init__(self, order: int, vocab_size: int):
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order, self.vocab_size = order, vocab_size
        self.counts: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in range(order)]
        # derived from counts for sampling; fit() clears them
        self._followers: dict[tuple, tuple[np.ndarray, np.ndarray, float] | None] = {}
        self._base_probs: np.ndarray | None = None

    def fit(self, sequences: Sequence[Sequence[int]]) -> "NGramModel":
        for seq in sequences:
            seq = list(seq)
            for i, tok in enumerate(seq):
                for k in range(self.order):  # k = context length
                    if i - k < 0:
                        break
                    self.counts[k][tuple(seq[i - k:i])][tok] += 1
        self._followers.clear()
        self._base_probs = None
        return self

    def prob(self, context: Sequence[int], token: int) -> float:
        """P(token | last order-1 tokens of context), interpolated down to a uniform floor."""
        p = 1.0 / self.vocab_size
        for k in range(0, self.order):
            if k > len(context):
                break
            ctx = tuple(context[len(context) - k:]) if k else ()
            c = self.counts[k].get(ctx)
            if not c:
                continue
            total, distinct = sum(c.values()), len(c)
            lam = total / (total + distinct)
            p = lam * c[token] / total + (1 - lam) * p
        return p

    def evaluate(self, contexts: np.ndarray, targets: np.ndarray) -> dict:
        """Mean negative log-likelihood (nats) and argmax accuracy.

        Parameters
        ----------
        contexts : int (n, window) preceding tokens; only the last order-1 are used.
        targets : int (n,) the tokens to predict.

        Returns ``{"loss": nan, "acc": nan}`` for empty input.
        """
        if len(targets) == 0:
            return {"loss": float("nan"), "acc": float("nan")}
        nll, correct = 0.0, 0
        for ctx, tgt in zip(contexts, targets):
            ctx = list(ctx[len(ctx) - (self.order - 1):]) if self.order > 1 else []
            nll -= math.log(self.prob(ctx, int(tgt)))
            correct += int(self.predict(ctx) == int(tgt))
        return {"loss": nll / len(targets), "acc": correct / len(targets)}

    def predict(self, context: Sequence[int]) -> int:
        """Most likely next id: the longest context seen wins (its counts dominate the mix)."""
        for k in range(min(self.order - 1, len(context)), -1, -1):
            ctx = tuple(context[len(context) - k:]) if k else ()
            c = self.counts[k].get(ctx)
            if c:
                return max(c, key=lambda t: (self.prob(context, t), -t))
        return 0

    # ------------------------------------------------------------------ sampling

    def _seen_after(self, ctx: tuple) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Tokens seen after ``ctx`` as (ids, relative frequencies, Witten-Bell lambda); cached."""
        if ctx not in self._followers:
            c = self.counts[len(ctx)].get(ctx)
            if not c:
                self._followers[ctx] = None
            else:
                total, distinct = sum(c.values()), len(c)
                ids = np.fromiter(c.keys(), dtype=np.int64, count=distinct)
                freq = np.fromiter(c.values(), dtype=float, count=distinct) / total
                self._followers[ctx] = (ids, freq, total / (total + distinct))
        return self._followers[ctx]

    def _base(self) -> np.ndarray:
        """P(token | no context), float (vocab_size,): the unigram level every context backs off to."""
        if self._base_probs is None:
            p = np.full(self.vocab_size, 1.0 / self.vocab_size)
            seen = self._seen_after(())
            if seen is not None:
                ids, freq, lam = seen
                p *= 1 - lam
                p[ids] += lam * freq
            self._base_probs = p
        return self._base_probs

    def _mixture(self, context: Sequence[int]) -> tuple[float, list[tuple[np.ndarray, np.ndarray, float]]]:
        """:meth:`prob` for every token at once, unrolled from the longest context down.

        Returns ``rest`` and ``parts``, one ``(ids, freq, weight)`` per seen
        context of length >= 1: P(. | context) is ``rest * self._base()`` plus
        ``weight * freq`` at ``ids`` for each part.
        """
        rest, parts = 1.0, []
        for k in range(min(self.order - 1, len(context)), 0, -1):
            seen = self._seen_after(tuple(context[len(context) - k:]))
            if seen is not None:
                ids, freq, lam = seen
                parts.append((ids, freq, rest * lam))
                rest *= 1 - lam
        return rest, parts

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(token | context) for every id: float (vocab_size,), summing to 1.

        Entry ``t`` equals ``prob(context, t)`` (the sampler draws from these);
        contexts never seen in training back off to shorter ones, down to the
        uniform floor.
        """
        return self._distributions([context])[0][0]

    def sample(self, primer: Sequence[int], length: int, temperature: float,
               rng: np.random.Generator | int, *, count: int = 1,
               stop_id: int | None = None) -> list[list[int]]:
        """Draw ``count`` continuations of ``primer``, as :func:`pipeline.stages.generate.sample` does.

        Parameters
        ----------
        primer : ids the continuations follow (may be empty); its last
            ``order - 1`` ids are the first context. Ids never seen in
            training are fine: their contexts back off.
        length : maximum number of new ids per continuation.
        temperature : divides the log-probabilities before renormalising
            (``p ** (1 / T)``), so 1 samples the model as fitted, below 1
            sharpens it and above 1 flattens it towards uniform; 0 is greedy
            (the most likely id, the lowest on ties).
        rng : numpy Generator, or an int seed for one; the same seed gives the
            same samples.
        count : number of continuations, drawn side by side.
        stop_id : an id that ends a continuation (kept in it), e.g. ``<end>``.

        Returns
        -------
        ids : ``count`` lists of at most ``length`` new ids (primer excluded).
        """
        primer = [int(t) for t in primer]
        if any(not 0 <= t < self.vocab_size for t in primer):
            raise ValueError(f"primer ids must lie in 0..{self.vocab_size - 1}")
        if not temperature >= 0:  # also catches nan
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if length < 0 or count < 0:
            raise ValueError(f"length and count must be >= 0, got {length} and {count}")
        rng = np.random.default_rng(rng)
        exponent = 1.0 / temperature if temperature > 0 else 1.0
        base = self._base()
        base_t = (base / base.max()) ** exponent
        n_ctx = self.order - 1
        history = [primer[len(primer) - n_ctx:] if n_ctx else [] for _ in range(count)]
        result: list[list[int]] = [[] for _ in range(count)]
        live = list(range(count))
        for _ in range(length):
            if not live:
                break
            weights = self._weights([history[b] for b in live], exponent, base_t)
            # a draw for every row, stopped or not, so a stop never changes the other rows' samples
            u = rng.random(count)[live]
            nxt = (weights.argmax(axis=1) if temperature == 0 else _draw_rows(weights, u)).tolist()
            for b, tok in zip(live, nxt):
                result[b].append(tok)
                if n_ctx:
                    history[b] = (history[b] + [tok])[-n_ctx:]
            if stop_id is not None:
                live = [b for b, tok in zip(live, nxt) if tok != stop_id]
        return result

    def _distributions(self, contexts: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`distribution` of each context at once.

        Returns
        -------
        p : float (len(contexts), vocab_size), one distribution per row.
        rest : float (len(contexts),), the weight of ``self._base()`` in each row.
        touched : int flat indices into ``p`` of the ids that some context of
            length >= 1 saw (may repeat); elsewhere ``p`` is ``rest * base``.
        """
        rows, vocab = len(contexts), self.vocab_size
        rest, ids, freqs, weights, row_of = np.empty(rows), [], [], [], []
        for row, ctx in enumerate(contexts):
            rest[row], parts = self._mixture(ctx)
            for i, f, w in parts:
                ids.append(i)
                freqs.append(f)
                weights.append(w)
                row_of.append(row)
        p = np.outer(rest, self._base())
        if not ids:
            return p, rest, np.zeros(0, dtype=np.int64)
        # every part of every row in one bincount: a few dict look-ups per row, not a few vector operations
        sizes = [len(i) for i in ids]
        touched = np.concatenate(ids) + np.repeat(np.array(row_of) * vocab, sizes)
        p += np.bincount(touched, np.concatenate(freqs) * np.repeat(weights, sizes),
                         minlength=rows * vocab).reshape(rows, vocab)
        return p, rest, touched

    def _weights(self, contexts: list[list[int]], exponent: float, base_t: np.ndarray) -> np.ndarray:
        """``(p / max p) ** exponent`` of each context's distribution p, float (len(contexts), vocab_size).

        Dividing by the row maximum keeps the largest weight at 1, so a small
        temperature underflows only unlikely ids and never overflows. Away
        from the touched ids (few) a row is ``rest * base``, so only those
        take a power; the rest is a multiple of ``base_t``, the base scaled
        to a maximum of 1 and raised to ``exponent`` once per call.
        """
        p, rest, touched = self._distributions(contexts)
        top = p.max(axis=1)
        if exponent == 1.0:
            return p / top[:, None]
        out = np.outer((rest * self._base().max() / top) ** exponent, base_t)
        row = touched // self.vocab_size
        out.flat[touched] = (p.flat[touched] / top[row]) ** exponent  # a repeated index writes one value twice
        return out


def _draw_rows(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One column index per row of non-negative ``weights`` (rows, n), drawn in proportion.

    ``u`` holds one uniform [0, 1) number per row. All rows share one flat
    cumulative sum and one ``searchsorted``.
    """
    rows, n = weights.shape
    cum = np.cumsum(weights.ravel())
    ends = cum[n - 1::n]
    starts = np.concatenate(([0.0], ends[:-1]))
    # side="right": an entry of zero weight (cum equal to its left neighbour's) is never drawn
    picked = np.searchsorted(cum, starts + u * (ends - starts), side="right") - np.arange(rows) * n
    return np.minimum(picked, n - 1)
