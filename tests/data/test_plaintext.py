import pytest

from man_tf.data.errors import DataError
from man_tf.data.plaintext import read_plain_text


def test_plain_text(write):
    path = write("u.txt", "Ein Satz hier .\n\n  \nNoch einer\n")
    sentences = read_plain_text(path)
    assert [s.tokens for s in sentences] == [("Ein", "Satz", "hier", "."), ("Noch", "einer")]
    assert sentences[1].source.endswith("u.txt:4")
    with pytest.raises(DataError, match="empty file"):
        read_plain_text(write("e.txt", "\n \n"))
