"""Raw text -> tokens the way the CoNLL NER files split them, with TF ops only.

A tagger is trained and scored on CoNLL tokens, so the served graph should
cut raw text the same way. CoNLL's conventions, in brief: words are split at
whitespace; punctuation marks are tokens of their own (``Berlin ,``,
``( AP )``, quotes), but abbreviations keep their periods (``U.S.``,
``Inc.``), numbers keep their separators (``1,000``, ``3.5``), hyphenated
words stay whole (``EU-Kommission``, ``German-born``), a sentence's final
period is split off, and English clitics are split (``Germany 's``,
``do n't``). TF Text's ``UnicodeScriptTokenizer`` instead cuts at every
change of character class (``U . S .``, ``EU - Kommission``).

Written as regular-expression rewrites (``tf.strings.regex_replace``, RE2,
core TensorFlow) followed by a whitespace split (``tf.strings.split``), so
TensorFlow Serving runs it without extra ops. ``benchmarks/serving_tokens.py``
measures it against the pre-tokenized F1.
"""

import tensorflow as tf

# Placeholders for separators that must survive the punctuation rules.
_KEEP_COMMA = "\x02"
_KEEP_APOSTROPHE = "\x03"

# (pattern, replacement), applied in order.
_RULES = (
    # Separators inside numbers stay: 1,000 / 3,5 (de, es, nl decimals).
    (r"(\d),(\d)", r"\1" + _KEEP_COMMA + r"\2"),
    # Brackets, quotes and , ; ! ? are tokens of their own.
    (r"([()\[\]{}\"«»“”„,;!?])", r" \1 "),
    # A colon is split unless inside a token (10:30, URLs).
    (r":(\s|$)", r" : \1"),
    (r"(^|\s):", r"\1 : "),
    # English clitics: Germany's -> Germany 's, don't -> do n't.
    (r"(\w)n't\b", r"\1 n" + _KEEP_APOSTROPHE + "t"),
    (r"(\w)'(s|S|re|ve|ll|d|m)\b", r"\1 " + _KEEP_APOSTROPHE + r"\2"),
    # Other single quotes at a word's edge are quote marks.
    (r"(^|\s)'", r"\1' "),
    (r"'(\s|$)", r" '\1"),
    # The sentence's final period (and ... ) is split off a word.
    (r"([^\s.])(\.+)\s*$", r"\1 \2"),
    (_KEEP_COMMA, ","),
    (_KEEP_APOSTROPHE, "'"),
)


def conll_tokenize(text):
    """string ``[batch]`` -> ragged tokens ``[batch, (tokens)]``."""
    for pattern, replacement in _RULES:
        text = tf.strings.regex_replace(text, pattern, replacement)
    return tf.strings.split(tf.strings.strip(text))
