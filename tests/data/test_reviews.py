import glob
import os

import pytest

from man_tf.data.errors import DataError
from man_tf.data.reviews import read_labeled_text, read_reviews
from tests.conftest import SHARED_DATA

WEBIS = os.path.join(SHARED_DATA, "webis-cls-10")
FILES = sorted(glob.glob(os.path.join(WEBIS, "*", "*", "*.review")))


def test_all_real_files_are_present():
    if not os.path.isdir(WEBIS):
        pytest.skip(f"real data not found at {WEBIS}")
    assert len(FILES) == 24  # {en,de,fr,jp} x {books,dvd,music} x {train,test}


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(p, WEBIS) for p in FILES])
def test_real_file_counts(path):
    documents = read_reviews(path)
    assert len(documents) == 2000
    assert sum(d.label for d in documents) == 1000
    # A few real reviews have an empty <text> (their summary may still say something).
    assert sum(not d.text for d in documents) <= 2
    assert documents[0].source.startswith(path + ":")


def test_japanese_text_is_decoded():
    if not os.path.isdir(WEBIS):
        pytest.skip(f"real data not found at {WEBIS}")
    text = read_reviews(os.path.join(WEBIS, "jp", "music", "test.review"))[0].text
    assert any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


REVIEW = ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<items>\n"
          "<item><rating>{rating}</rating><summary>s</summary><text>great &amp; fun</text></item>\n"
          "<item><rating>1.0</rating><text>bad</text></item>\n</items>\n")


def test_ratings_map_to_labels(write):
    docs = read_reviews(write("r.review", REVIEW.format(rating="4.0")))
    assert [(d.text, d.label) for d in docs] == [("great & fun", 1), ("bad", 0)]
    assert docs[0].source.endswith("r.review:3") and docs[0].summary == "s"


def test_unknown_rating_is_an_error_or_a_counted_skip(write):
    path = write("r.review", REVIEW.format(rating="3.0"))
    with pytest.raises(DataError, match=r"r\.review:3: rating '3\.0' is neither negative"):
        read_reviews(path)
    docs, skipped = read_reviews(path, skip_unknown=True, with_counts=True)
    assert skipped == 1 and [d.label for d in docs] == [0]


def test_malformed_xml_names_the_line(write):
    path = write("bad.review", "<items>\n<item><rating>5.0</rating>\n<text>x</txt></item>\n")
    with pytest.raises(DataError, match=r"bad\.review:3: malformed XML: mismatched tag"):
        read_reviews(path)
    with pytest.raises(DataError, match="no <item> reviews"):
        read_reviews(write("empty.review", "<items></items>"))


def test_labeled_text(write):
    docs = read_labeled_text(write("t.tsv", "positive\tGreat book\n\nnegative\tBoring\n"))
    assert [(d.text, d.label) for d in docs] == [("Great book", 1), ("Boring", 0)]
    with pytest.raises(DataError, match=r"t\.tsv:1: unknown label 'meh'"):
        read_labeled_text(write("t.tsv", "meh\tok\n"))
    with pytest.raises(DataError, match=r"t\.tsv:1: expected 'label<TAB>text'"):
        read_labeled_text(write("t.tsv", "no tab here\n"))


def test_the_in_language_check_never_trains_on_its_dev_reviews():
    """configs/amazon_in_language.py: one language is source and, under a
    second name, target; its dev reviews, cut from the train file both read,
    are left out of the source's labeled reviews."""
    if not os.path.isdir(WEBIS):
        pytest.skip(f"real data not found at {WEBIS}")
    from man_tf.config_files import load_config_file
    from man_tf.data import loading
    from man_tf.tasks import task_of

    config = load_config_file("amazon_in_language:jp")
    config.data.root, config.domain = WEBIS, "dvd"
    assert (config.sources, config.target) == (("jp",), "jp_self")
    assert "jp_self" in config.model.encoder_joined_languages
    data = loading.load_data(config, task_of(config), splits=("train", "dev"))
    dev = {s.source for s in data.dev["jp_self"]}
    train = {s.source for s in data.labeled["jp"]}
    assert len(dev) == 400 and len(train) == 1600 and not dev & train
    # The same 1,600 when the dev split is not read.
    alone = loading.load_data(config, task_of(config), splits=("train",))
    assert {s.source for s in alone.labeled["jp"]} == train
    assert len(data.unlabeled["jp_self"]) == 6000  # every domain's train text, labels unread
    # A source reading another file keeps every review (the 3->1 setting).
    config = load_config_file("amazon_cls:encoder")
    config.data.root, config.domain, config.target = WEBIS, "dvd", "jp"
    data = loading.load_data(config, task_of(config), splits=("train", "dev"))
    assert all(len(sentences) == 2000 for sentences in data.labeled.values())
