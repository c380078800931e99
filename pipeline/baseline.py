"""N-gram baselines over the same tokens and split as the neural models.

A model that does not beat these has learnt nothing beyond local statistics.
Smoothing is interpolated Witten-Bell, which needs no tuned parameter: each
order's weight comes from how many distinct tokens followed its context.
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

    def fit(self, sequences: Sequence[Sequence[int]]) -> "NGramModel":
        for seq in sequences:
            seq = list(seq)
            for i, tok in enumerate(seq):
                for k in range(self.order):  # k = context length
                    if i - k < 0:
                        break
                    self.counts[k][tuple(seq[i - k:i])][tok] += 1
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
