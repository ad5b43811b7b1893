import os

import pytest

from man_tf.data.conll import entity_counts
from man_tf.data.errors import DataError
from man_tf.data.germeval import map_germeval_tag, read_germeval
from man_tf.data.plaintext import read_plain_text
from tests.conftest import SHARED_DATA


def germeval(name):
    path = os.path.join(SHARED_DATA, "germeval2014", name)
    if not os.path.isdir(os.path.dirname(path)):
        pytest.skip(f"real data not found at {os.path.dirname(path)}")
    return path


@pytest.mark.parametrize("name,sentences,tokens", [
    ("NER-de-dev.tsv", 2200, 41653), ("NER-de-test.tsv", 5100, 96499)])
def test_real_germeval_sizes(name, sentences, tokens):
    data = read_germeval(germeval(name))
    assert (len(data), sum(len(s) for s in data)) == (sentences, tokens)
    mapped = read_germeval(germeval(name), map_to_conll=True)
    assert set(entity_counts(mapped)) == {"PER", "LOC", "ORG", "MISC"}


def test_germeval_mapping():
    assert map_germeval_tag("B-OTH") == "B-MISC"
    assert map_germeval_tag("I-LOCderiv") == "I-MISC"
    assert map_germeval_tag("B-ORGpart") == "O"
    assert map_germeval_tag("B-PER") == "B-PER"
    with pytest.raises(ValueError):
        map_germeval_tag("B-FOO")


def test_germeval_errors(write):
    with pytest.raises(DataError, match=r"g\.tsv:2: expected 4 tab-separated columns"):
        read_germeval(write("g.tsv", "# source\n1 Wort O O\n"))
    with pytest.raises(DataError, match=r"g\.tsv:1: unknown GermEval tag 'Q'"):
        read_germeval(write("g.tsv", "1\tWort\tQ\tO\n"))


def test_plain_text(write):
    path = write("u.txt", "Ein Satz hier .\n\n  \nNoch einer\n")
    sentences = read_plain_text(path)
    assert [s.tokens for s in sentences] == [("Ein", "Satz", "hier", "."), ("Noch", "einer")]
    assert sentences[1].source.endswith("u.txt:4")
    with pytest.raises(DataError, match="empty file"):
        read_plain_text(write("e.txt", "\n \n"))
