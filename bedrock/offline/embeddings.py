"""Deterministic text embeddings for the offline endpoint: texts that share words are near, texts that do not are not.

Not a language model: a feature-hashed bag of words. Each content word (lowercased, punctuation stripped, stop words
dropped, a plural's "s" taken off) is hashed into a few signed buckets of the vector; the vector is then L2-normalised,
as Titan text embeddings v2 normalises by default. Cosine similarity is then about shared words: two texts sharing
none score ~0 (the signed collisions cancel), one sharing a word scores well above that. Enough for semantic search
to be exercised end to end offline — a query finds the fact that uses its words — and the same in every process.
"""

from __future__ import annotations

import hashlib
import math
import re

__all__ = ["binary", "count_tokens", "embed", "words"]

# Each word lands in 4 buckets, each with its own sign. Why 4, not 1: a fact of ~8 content words fills ~32 of 1024
# buckets, so two unrelated words share a bucket with chance 1/1024 per pair of buckets; with 4 buckets a word's
# weight is spread, and one shared bucket carries 1/4 of it, not all, and with a random sign it adds as often as it
# subtracts. Why not 16: the 256-dimension vectors would fill up (8 words × 16 = 128 of 256) and collide everywhere.
BUCKETS_PER_WORD = 4

# Words too common to tell texts apart: "Is my dog at the vet?" shares "is", "my", "at", "the" with most facts and "dog"
# only with the one it asks about; kept, those four would outweigh it. Short on purpose (72 words): a word wrongly
# kept only adds noise, a word wrongly dropped loses a match. "s", "t", "don": what "user's", "don't" leave.
STOP_WORDS = frozenset(
    "a about an and are as at be been but by can did do does for from had has have he her his how i if in into is it "
    "its me my no not of on or our she so than that the their them then there these they this those to too was we "
    "were what when where which who whom why will with would you your s t don".split()
)

_WORD = re.compile(r"[a-z0-9]+")
# A rough count of what Titan's tokenizer counts: each run of letters or digits, and each other visible character.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def stem(word: str) -> str:
    """A plural's light stemming, so "cats" meets "cat", "allergies" "allergy", "boxes" "box"; "bus", "this" stay."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The content words of `text`, as the embedding sees them: lowercased, stemmed, without stop words."""
    return [stem(word) for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]


def _buckets(word: str, dimensions: int) -> list[tuple[int, float]]:
    """The word's (bucket, sign) pairs. blake2b, not `hash()`: Python salts str hashes per process (PYTHONHASHSEED),
    and an embedding stored by one process must match a query embedded by another."""
    digest = hashlib.blake2b(word.encode(), digest_size=4 * BUCKETS_PER_WORD).digest()
    pairs = []
    for i in range(BUCKETS_PER_WORD):
        value = int.from_bytes(digest[4 * i: 4 * i + 4], "big")
        pairs.append((value % dimensions, 1.0 if value >> 31 else -1.0))  # the top bit: the sign
    return pairs


def embed(text: str, dimensions: int = 1024, normalize: bool = True) -> list[float]:
    """`text` as a `dimensions`-long vector; unit length unless `normalize` is False (then the raw bucket sums).

    A text with no content word (only stop words or punctuation) is hashed whole, so it still gets a vector of its
    own rather than zeros (which cannot be normalised, and would be equally near everything).
    """
    vector = [0.0] * dimensions
    for word in words(text) or [text.strip().lower()]:
        for bucket, sign in _buckets(word, dimensions):
            vector[bucket] += sign
    if not normalize:
        return vector
    norm = math.sqrt(sum(value * value for value in vector))
    # All zeros can still happen, though hardly (a one-word text whose 4 buckets cancel in pairs: ~1 word in 10^6).
    return [value / norm for value in vector] if norm else vector


def binary(vector: list[float]) -> list[int]:
    """Titan's binary embedding of a float one: 1 where a value is positive, else 0."""
    return [1 if value > 0 else 0 for value in vector]


def count_tokens(text: str) -> int:
    """An estimate of `inputTextTokenCount` (Titan's own tokenizer is not public): words and punctuation marks."""
    return len(_TOKEN.findall(text))
