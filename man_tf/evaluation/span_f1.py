"""Entity-level precision/recall/F1 exactly as CoNLL's ``conlleval.pl`` scores them.

A port of conlleval's chunk logic (``startOfChunk``/``endOfChunk``), so IOB1,
BIO2 and IOBES tags are all read as conlleval reads them: an ``I-X`` after
``O`` or after another type opens a chunk, and a predicted chunk counts as
correct only when it starts and ends where a gold chunk does, with the same
type. Sentence boundaries act as an ``O`` token, as in conlleval.
"""

import dataclasses


def _split(tag):
    if tag == "O":
        return "O", ""
    prefix, _, entity_type = tag.partition("-")
    return prefix, entity_type


def _end_of_chunk(prev_tag, tag, prev_type, entity_type):
    if prev_tag in ("B", "I") and tag in ("B", "O"):
        return True
    if prev_tag == "E" and tag in ("E", "I", "O"):
        return True
    if prev_tag == "S":
        return True
    if prev_tag not in ("O", ".") and prev_type != entity_type:
        return True
    return prev_tag in ("]", "[")


def _start_of_chunk(prev_tag, tag, prev_type, entity_type):
    if tag == "B":
        return True
    if prev_tag in ("O", "E", "S") and tag in ("I", "E"):
        return True
    if tag == "S":
        return True
    if tag not in ("O", ".") and prev_type != entity_type:
        return True
    return tag in ("[", "]")


@dataclasses.dataclass
class SpanScores:
    """Counts and scores; ``by_type[t]`` holds the same for one entity type."""

    correct: int = 0
    predicted: int = 0
    gold: int = 0
    tokens: int = 0
    correct_tokens: int = 0
    by_type: dict = dataclasses.field(default_factory=dict)

    @property
    def precision(self):
        return 100.0 * self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self):
        return 100.0 * self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self):
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def accuracy(self):
        return 100.0 * self.correct_tokens / self.tokens if self.tokens else 0.0

    @property
    def primary(self):
        """The number model selection maximises: entity F1."""
        return self.f1

    def to_dict(self):
        out = {"precision": self.precision, "recall": self.recall, "f1": self.f1,
               "correct": self.correct, "predicted": self.predicted, "gold": self.gold}
        if self.tokens:
            out["token_accuracy"] = self.accuracy
        if self.by_type:
            out["by_type"] = {t: s.to_dict() for t, s in sorted(self.by_type.items())}
        return out


def span_f1(gold_sentences, predicted_sentences):
    """Scores predicted tag sequences against gold ones (lists of tag lists).

    Returns a :class:`SpanScores`; ``.f1`` is conlleval's FB1 (0-100).
    """
    if len(gold_sentences) != len(predicted_sentences):
        raise ValueError(f"{len(gold_sentences)} gold sentences but "
                         f"{len(predicted_sentences)} predicted")
    scores = SpanScores()
    types = {}

    def count(entity_type, field):
        setattr(scores, field, getattr(scores, field) + 1)
        per_type = types.setdefault(entity_type, SpanScores())
        setattr(per_type, field, getattr(per_type, field) + 1)

    in_correct = False
    last_gold, last_gold_type, last_pred, last_pred_type = "O", "", "O", ""
    for gold_tags, pred_tags in zip(gold_sentences, predicted_sentences):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"sentence lengths differ: {len(gold_tags)} gold tags, "
                             f"{len(pred_tags)} predicted")
        # The trailing ("O", "O") is the sentence boundary conlleval inserts.
        for position, (gold, pred) in enumerate([*zip(gold_tags, pred_tags), ("O", "O")]):
            boundary = position == len(gold_tags)
            gold_tag, gold_type = _split(gold)
            pred_tag, pred_type = _split(pred)
            if in_correct:
                gold_end = _end_of_chunk(last_gold, gold_tag, last_gold_type, gold_type)
                pred_end = _end_of_chunk(last_pred, pred_tag, last_pred_type, pred_type)
                if gold_end and pred_end and last_gold_type == last_pred_type:
                    in_correct = False
                    count(last_gold_type, "correct")
                elif gold_end != pred_end or gold_type != pred_type:
                    in_correct = False
            gold_start = _start_of_chunk(last_gold, gold_tag, last_gold_type, gold_type)
            pred_start = _start_of_chunk(last_pred, pred_tag, last_pred_type, pred_type)
            if gold_start and pred_start and gold_type == pred_type:
                in_correct = True
            if gold_start:
                count(gold_type, "gold")
            if pred_start:
                count(pred_type, "predicted")
            if not boundary:
                scores.tokens += 1
                scores.correct_tokens += gold == pred
            last_gold, last_gold_type, last_pred, last_pred_type = (
                gold_tag, gold_type, pred_tag, pred_type)
    if in_correct:
        count(last_gold_type, "correct")
    scores.by_type = types
    return scores


def format_report(scores):
    """A conlleval-style text table."""
    lines = [f"processed {scores.tokens} tokens with {scores.gold} phrases; "
             f"found: {scores.predicted} phrases; correct: {scores.correct}.",
             f"accuracy: {scores.accuracy:6.2f}%; precision: {scores.precision:6.2f}%; "
             f"recall: {scores.recall:6.2f}%; FB1: {scores.f1:6.2f}"]
    for entity_type, s in sorted(scores.by_type.items()):
        lines.append(f"{entity_type:>17}: precision: {s.precision:6.2f}%; "
                     f"recall: {s.recall:6.2f}%; FB1: {s.f1:6.2f}  {s.predicted}")
    return "\n".join(lines)
