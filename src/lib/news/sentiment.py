"""Sentiment of a news item with VADER (a lexicon model: no weights to download).

Example:
    >>> score("Apple shares soar on record profit", "Strong iPhone demand").label
    'positive'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from lib.news.model import sentiment_label


@dataclass(frozen=True)
class Sentiment:
    label: str
    score: float  # VADER compound, in [-1, 1]


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    # Loading the lexicon takes ~100 ms: once per execution environment, reused when warm.
    return SentimentIntensityAnalyzer()


def score(headline: str, summary: str = "") -> Sentiment:
    """Score headline and summary together; the label follows contracts.md's thresholds."""
    text = f"{headline}. {summary}" if summary else headline
    compound = float(_analyzer().polarity_scores(text)["compound"])
    return Sentiment(label=sentiment_label(compound), score=compound)
