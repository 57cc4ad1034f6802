"""The triage agent's model: a multinomial naive Bayes text classifier, trained at start
from ``training.csv`` shipped beside it. Offline, no download, deterministic.

Hand-rolled rather than scikit-learn on purpose: forty labelled lines need no
numpy/scipy wheels (over 100 MB) in a participant, train in about a millisecond,
and give the same answer on every Python. What the saga needs from any model is
the `Assessment` contract (a decision and a confidence in [0, 1]); a bigger local
model, or a hosted one behind `sagas bridge`, keeps that contract (README,
"Healthcare").
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.agent_step import Assessment

TRAINING = Path(__file__).with_name("training.csv")
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class NaiveBayes:
    """log P(label) and log P(word | label) with Laplace smoothing."""

    priors: dict[str, float]
    likelihoods: dict[str, dict[str, float]]
    unseen: dict[str, float]
    name: str = "naive-bayes"

    @classmethod
    def train(cls, examples: Iterable[tuple[str, str]], name: str = "naive-bayes") -> NaiveBayes:
        counts: dict[str, Counter[str]] = {}
        docs: Counter[str] = Counter()
        for text, label in examples:
            docs[label] += 1
            counts.setdefault(label, Counter()).update(words(text))
        if len(docs) < 2:
            raise ValueError(f"training data needs at least two labels, got {sorted(docs)}")
        vocabulary = set().union(*(c.keys() for c in counts.values()))
        total = sum(docs.values())
        priors = {label: math.log(n / total) for label, n in docs.items()}
        likelihoods: dict[str, dict[str, float]] = {}
        unseen: dict[str, float] = {}
        for label, c in counts.items():
            denominator = sum(c.values()) + len(vocabulary)
            likelihoods[label] = {w: math.log((c[w] + 1) / denominator) for w in vocabulary}
            unseen[label] = math.log(1 / denominator)
        return cls(priors, likelihoods, unseen, name)

    def assess(self, text: str) -> Assessment:
        """The most probable label and its posterior probability. Words never seen in
        training say nothing (they would only pull both labels down alike)."""
        known = [w for w in words(text) if any(w in lk for lk in self.likelihoods.values())]
        scores = {
            label: prior + sum(self.likelihoods[label].get(w, self.unseen[label]) for w in known)
            for label, prior in self.priors.items()
        }
        top = max(scores.values())
        weights = {label: math.exp(s - top) for label, s in scores.items()}
        label = max(sorted(weights), key=lambda k: weights[k])
        return Assessment(label, round(weights[label] / sum(weights.values()), 4), self.name)


def load_examples(path: Path = TRAINING) -> list[tuple[str, str]]:
    with path.open(newline="") as file:
        return [(row["description"], row["label"]) for row in csv.DictReader(file)]


def trained(path: Path = TRAINING) -> NaiveBayes:
    return NaiveBayes.train(load_examples(path), name=f"naive-bayes:{path.name}")
