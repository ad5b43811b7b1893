import numpy as np
import pytest

from man_tf.data.embeddings import read_vec
from man_tf.data.errors import DataError


def test_header_lookup_and_lowercase_fallback(write):
    path = write("e.vec", "3 2\nBerlin 1 2\nhaus 3 4 \nberlin 5 6\n")
    vec = read_vec(path)
    assert vec.dim == 2 and vec.lines_read == 3
    np.testing.assert_array_equal(vec.lookup("Berlin"), [1, 2])
    np.testing.assert_array_equal(vec.lookup("berlin"), [5, 6])  # exact beats lowercase
    np.testing.assert_array_equal(vec.lookup("HAUS"), [3, 4])     # lowercase fallback
    assert vec.lookup("auto") is None


def test_no_header_and_needed_filter(write):
    path = write("e.vec", "a 1 2 3\nB 4 5 6\nc 7 8 9\n")
    vec = read_vec(path, needed={"b", "c"})
    assert set(vec.vectors) == {"B", "c"}
    np.testing.assert_array_equal(vec.lookup("b"), [4, 5, 6])


def test_max_words_stops_reading(write):
    # The broken third line is never reached: the file is streamed, not slurped.
    path = write("e.vec", "a 1 2\nb 3 4\nc 5\n")
    vec = read_vec(path, max_words=2)
    assert set(vec.vectors) == {"a", "b"}


@pytest.mark.parametrize("content,dim,message", [
    ("a 1 2\nb 3\n", None, r"e\.vec:2: expected 2 values after the word, got 1"),
    ("2 3\na 1 2 3\n", 2, r"e\.vec:1: header says dimension 3, expected 2"),
    ("a 1 2 3\n", 2, r"e\.vec:1: expected 2 values after the word, got 3"),
    ("a 1 x\n", None, r"e\.vec:1: expected numbers"),
    ("a 1 nan\n", None, r"e\.vec:1: vector has NaN or Inf"),
    ("", None, r"e\.vec:1: no vectors"),
])
def test_bad_vec_files(write, content, dim, message):
    with pytest.raises(DataError, match=message):
        read_vec(write("e.vec", content), dim=dim)


def test_duplicates_and_undecodable_bytes(write):
    path = write("e.vec", b"a 1 2\na 3 4\n\xff\xfe 5 6\nb 7 8\n")
    vec = read_vec(path)
    np.testing.assert_array_equal(vec.lookup("a"), [1, 2])
    assert vec.duplicates == 1 and vec.undecodable == 1 and vec.first_undecodable_line == 3
    assert vec.lookup("b") is not None
    with pytest.raises(DataError, match=r"e\.vec:3: byte 0xff is not valid UTF-8"):
        read_vec(path, strict_utf8=True)
