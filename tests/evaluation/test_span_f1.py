import random

import pytest
from seqeval.metrics import f1_score

from man_tf.data.conll import read_conll
from man_tf.evaluation.span_f1 import format_report, span_f1
from man_tf.evaluation.tagging import conll_lines, score

# A small file scored by hand. Gold (BIO2):
#   [PER John Smith] visited [LOC New York] and [ORG UN] .
#   [LOC Paris] is [MISC French] .
# Predicted:
#   [PER John Smith] visited [LOC New] [LOC York] and [PER UN] .   (PER right; LOC split: wrong; UN wrong type)
#   [LOC Paris] is [MISC French] .                                (both right)
GOLD = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-ORG", "O"],
        ["B-LOC", "O", "B-MISC", "O"]]
PRED = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-PER", "O"],
        ["B-LOC", "O", "B-MISC", "O"]]


def test_hand_computed_scores():
    s = span_f1(GOLD, PRED)
    # gold chunks 5, predicted 6, correct 3 (John Smith, Paris, French)
    assert (s.gold, s.predicted, s.correct) == (5, 6, 3)
    assert s.precision == pytest.approx(50.0)
    assert s.recall == pytest.approx(60.0)
    assert s.f1 == pytest.approx(2 * 50 * 60 / 110)
    assert s.by_type["PER"].correct == 1 and s.by_type["PER"].predicted == 2
    assert s.by_type["LOC"].f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2) * 100)
    assert s.by_type["ORG"].recall == 0.0
    assert s.tokens == 12 and s.correct_tokens == 10
    assert "FB1:  54.55" in format_report(s)


def test_iob1_input_is_read_as_conlleval_reads_it():
    # IOB1: I- opens an entity, B- only separates two adjacent same-type ones.
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    assert span_f1(gold, [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]).f1 == pytest.approx(100.0)
    assert span_f1(gold, [["B-PER", "I-PER", "I-PER", "O", "B-LOC"]]).correct == 1


def test_boundaries_end_entities():
    # An entity at the end of one sentence does not continue into the next.
    s = span_f1([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]])
    assert (s.gold, s.correct) == (2, 2)


def test_matches_seqeval_default_mode_on_random_sequences():
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-MISC"]
    for _ in range(300):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 9))]
                for _ in range(rng.randint(1, 4))]
        pred = [[rng.choice(tags) for _ in sentence] for sentence in gold]
        assert span_f1(gold, pred).f1 == pytest.approx(100 * f1_score(gold, pred), abs=1e-9)


def test_scoring_a_file_and_writing_predictions(write):
    path = write("g.conll", "John B-PER\nSmith I-PER\nran O\n\nParis B-LOC\n")
    sentences = read_conll(path)
    predicted = [["B-PER", "I-PER", "O"], ["O"]]
    s = score(sentences, predicted)
    assert (s.correct, s.gold, s.predicted) == (1, 2, 1)
    assert "".join(conll_lines(sentences, predicted)) == \
        "John B-PER B-PER\nSmith I-PER I-PER\nran O O\n\nParis B-LOC O\n\n"
    with pytest.raises(ValueError, match="lengths differ"):
        span_f1([["O", "O"]], [["O"]])
