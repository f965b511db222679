"""Word counts for every script: the one place that counts a text's words (the sidebar's word
count and reading time, and the archive's stored ``word_count``).

Chinese and Japanese are written without spaces between words, so splitting on whitespace
counts a whole paragraph as one word. There each Han, Hiragana or Katakana character counts as a
word (the usual convention for word counts in these languages; a reader of Chinese or Japanese
reads a few hundred characters a minute, about what :data:`pipeline.WORDS_PER_MINUTE` assumes of
words). Korean (Hangul) separates its words with spaces and is counted as words, like
everything else.
"""

from __future__ import annotations

import re

__all__ = ["word_count"]

# Han (the unified ideographs, extension A, the compatibility block and the supplementary
# planes' extensions), the iteration marks, Hiragana, Katakana (with its phonetic extensions and
# the half-width forms).
_CHARACTER_WORDS = re.compile(
    "[\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f]"
)
_WORDLIKE = re.compile(r"\w")


def word_count(text: str) -> int:
    """Words of ``text``: whitespace-separated words, each Chinese or Japanese character one.

    Text without such characters counts exactly as ``len(text.split())``."""
    if not _CHARACTER_WORDS.search(text):
        return len(text.split())
    characters = len(_CHARACTER_WORDS.findall(text))
    rest = _CHARACTER_WORDS.sub(" ", text)
    # Between the characters only what has a letter or digit is a word: "，" and "。" are not.
    return characters + sum(1 for w in rest.split() if _WORDLIKE.search(w))
