import pytest

from man_tf.data.conll import Sentence
from man_tf.data.vocab import (PAD_ID, UNK_ID, CharVocabulary, TagVocabulary, WordVocabulary,
                               load_vocabularies, save_vocabularies)

EN = [Sentence(("Berlin", "is", "big"), ("B-LOC", "O", "O"))]
DE = [Sentence(("Berlin", "ist", "groß"), None)]


def test_per_language_blocks_have_own_rows_and_unk():
    words = WordVocabulary.build({"en": EN, "de": DE})
    en, de = words.ids("en", ["berlin", "Berlin", "zzz"]), words.ids("de", ["Berlin", "zzz"])
    assert en[0] == en[1] and en[2] == words.unk_id("en")
    assert de[0] != en[0] and de[1] == words.unk_id("de") != words.unk_id("en")
    assert words.size == (2 + 3) + (2 + 3)


def test_shared_table_shares_identical_strings():
    words = WordVocabulary.build({"en": EN, "de": DE}, shared=True)
    assert words.ids("en", ["Berlin"]) == words.ids("de", ["Berlin"])
    assert words.size == 2 + 5


def test_tags_and_chars():
    tags = TagVocabulary.build([Sentence(("a",), ("I-PER",)), Sentence(("b",), ("B-LOC",))])
    assert tags.tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    chars = CharVocabulary.build(EN + DE)
    assert chars.ids("groß", 3) == [chars.id("g"), chars.id("r"), chars.id("o")]
    assert chars.id("☃") == UNK_ID and chars.tokens[PAD_ID] == "<pad>"


def test_save_load_round_trip(tmp_path):
    words = WordVocabulary.build({"en": EN, "de": DE})
    chars, tags = CharVocabulary.build(EN), TagVocabulary.build(EN)
    save_vocabularies(str(tmp_path), words, chars, tags)
    w2, c2, t2 = load_vocabularies(str(tmp_path))
    assert w2.ids("de", ["Berlin", "x"]) == words.ids("de", ["Berlin", "x"])
    assert c2.tokens == chars.tokens and t2.tags == tags.tags


def test_classes_are_labels_and_tags_keep_their_bio_build():
    from man_tf.data.vocab import LabelVocabulary
    from man_tf.tasks import task_of
    from man_tf.config_files import load_config_file
    classes = task_of(load_config_file("configs/amazon_cls.py")).label_vocabulary(
        ["negative", "positive"])
    assert type(classes) is LabelVocabulary and classes.id("positive") == 1
    assert classes.tags == classes.labels == ["negative", "positive"]
    with pytest.raises(KeyError, match="label 'neutral' is not in the training label set"):
        classes.id("neutral")
    tags = task_of(load_config_file("configs/sample_ner.py")).label_vocabulary(
        ["O", "B-PER", "I-PER"])
    assert isinstance(tags, TagVocabulary) and tags.entity_types == ["PER"]
    with pytest.raises(KeyError, match="tag 'B-LOC' is not in the training tag set"):
        tags.id("B-LOC")


def test_a_workdir_vocabulary_loads_as_the_task_asks(tmp_path):
    from man_tf.data.vocab import LabelVocabulary
    words = WordVocabulary.build({"en": EN})
    save_vocabularies(str(tmp_path), words, CharVocabulary.build(EN),
                      LabelVocabulary(["negative", "positive"]))
    _, _, labels = load_vocabularies(str(tmp_path), LabelVocabulary)
    assert type(labels) is LabelVocabulary and labels.labels == ["negative", "positive"]
