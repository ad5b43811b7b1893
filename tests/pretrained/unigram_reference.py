"""A reference for tests: the SentencePiece unigram segmentation of the bundled XLM-R vocabulary, in
Python: the reference for the in-graph TF Text tokenizer and the word-piece
aligner of feature extraction.

Text -> per-codepoint normalization (the file's table) -> runs of spaces
collapsed -> a leading ``▁`` unless the text starts with a space, every
space -> ``▁`` -> the most probable segmentation into vocabulary pieces
(Viterbi over the unigram log-probabilities; a character no piece covers is
``<unk>``, scored below every piece).
"""

import numpy as np

META = "\u2581"


class UnigramTokenizer:
    def __init__(self, weights):
        self.pieces = weights.pieces
        self.scores = weights.scores
        self.unk_id, self.bos_id, self.eos_id = weights.unk_id, weights.bos_id, weights.eos_id
        self.normalizer = {chr(k): "".join(chr(c) for c in v)
                           for k, v in weights.normalizer.items()}
        self.index = {}
        for i, piece in enumerate(self.pieces):
            if i != self.unk_id and piece:
                self.index.setdefault(piece, i)
        self.max_piece = max(len(p) for p in self.pieces)
        self.unk_score = float(np.min(self.scores)) - 10.0

    def normalize(self, text):
        text = "".join(self.normalizer.get(c, c) for c in text)
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def encode(self, text):
        """Piece ids of ``text`` (no ``<s>``/``</s>``)."""
        s = self.normalize(text)
        n = len(s)
        best = [-np.inf] * (n + 1)
        back = [(0, -1)] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] == -np.inf:
                continue
            for e in range(i + 1, min(n, i + self.max_piece) + 1):
                piece = self.index.get(s[i:e])
                if piece is not None:
                    score = best[i] + float(self.scores[piece])
                    if score > best[e]:
                        best[e], back[e] = score, (i, piece)
            score = best[i] + self.unk_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (i, self.unk_id)
        ids, at = [], n
        while at > 0:
            at, piece = back[at]
            ids.append(piece)
        return ids[::-1]
