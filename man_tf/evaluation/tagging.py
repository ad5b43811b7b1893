"""Scoring tagger predictions against gold CoNLL sentences; writing them out."""

from man_tf.evaluation.span_f1 import span_f1


def decode(predicted_ids, tag_vocabulary):
    """Id arrays -> lists of tag strings."""
    tags = tag_vocabulary.tags
    return [[tags[i] for i in ids] for ids in predicted_ids]


def bio_valid(tags):
    """True when no ``I-X`` starts the sentence or follows ``O`` or another type."""
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def score(sentences, predicted_tags):
    """Entity-level scores (conlleval semantics) of predictions for ``sentences``."""
    return span_f1([list(s.tags) for s in sentences], predicted_tags)


def conll_lines(sentences, predicted_tags):
    """``word gold predicted`` rows, a blank line after each sentence (the
    input conlleval.pl reads)."""
    for sentence, predicted in zip(sentences, predicted_tags):
        gold = sentence.tags or ("O",) * len(sentence)
        for word, g, p in zip(sentence.tokens, gold, predicted):
            yield f"{word} {g} {p}\n"
        yield "\n"
