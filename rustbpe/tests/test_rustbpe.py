"""rustbpe against its pure-Python twin `nanochat.bpe` (nbs/01_bpe.ipynb): same merges, same ids, round trips."""
import random

import pytest
from hypothesis import given, settings, strategies as st

import rustbpe
from nanochat.bpe import GPT4_PATTERN, SPLIT_PATTERN, BPETokenizer
from nanochat.testing import fixture_texts


def train_both(texts, vocab_size, pattern=None, buffer_size=8192):
    py, rs = BPETokenizer(), rustbpe.Tokenizer()
    py.train_from_iterator(iter(texts), vocab_size, pattern=pattern)
    rs.train_from_iterator(iter(texts), vocab_size, buffer_size=buffer_size, pattern=pattern)
    return py, rs


def random_texts(rng, alphabet, n_docs, max_len):
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len))) for _ in range(n_docs)]


@pytest.fixture(scope="module")
def trained():
    "A rustbpe tokenizer trained on the whole fixture (400 Wikipedia leads), 1024 tokens."
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(iter(fixture_texts()), 1024, pattern=SPLIT_PATTERN)
    return tok


def test_is_ours_not_pypi():
    assert rustbpe.__version__ == "0.2.0+nanochat"
    assert rustbpe.GPT4_PATTERN == GPT4_PATTERN and rustbpe.SPLIT_PATTERN == SPLIT_PATTERN


@pytest.mark.parametrize("seed", range(6))
def test_same_merges_on_random_text(seed):
    rng = random.Random(seed)
    alphabet = list("aab bc d\n1 2") if seed % 2 else list("ab ab  a11\t")  # small: many ties and runs
    texts = random_texts(rng, alphabet, 40, 60)
    for pattern in (None, SPLIT_PATTERN):
        py, rs = train_both(texts, 256 + 40, pattern)
        assert rs.get_merges() == py.merges
        assert rs.get_mergeable_ranks() == py.get_mergeable_ranks()
        assert rs.batch_encode(texts) == py.batch_encode(texts)


@pytest.mark.parametrize("seed", range(3))
def test_same_merges_on_unicode_text(seed):
    rng = random.Random(100 + seed)
    alphabet = list("éèàçœ東京大阪日本語🤗🚀 ÑñßΩπ١٢٣ абв\u0301\u200d\n") + ["😀👍🏽", "e\u0301"]
    texts = random_texts(rng, alphabet, 30, 40)
    py, rs = train_both(texts, 256 + 60, SPLIT_PATTERN)
    assert rs.get_merges() == py.merges
    assert rs.batch_encode(texts) == py.batch_encode(texts)
    for t in texts:
        assert rs.decode(rs.encode(t)) == t


def test_same_merges_on_wikipedia_slice():
    texts = fixture_texts()[:30]
    py, rs = train_both(texts, 256 + 50, SPLIT_PATTERN)
    assert rs.get_merges() == py.merges
    held = fixture_texts()[-5:]
    assert rs.batch_encode(held) == py.batch_encode(held)


def test_buffer_size_does_not_change_result():
    texts = fixture_texts()[:50]
    a, b = rustbpe.Tokenizer(), rustbpe.Tokenizer()
    a.train_from_iterator(iter(texts), 600, buffer_size=1)
    b.train_from_iterator(texts, 600, buffer_size=100000)  # any iterable works
    assert a.get_merges() == b.get_merges()


def test_vocab_and_ranks(trained):
    ranks = trained.get_mergeable_ranks()
    assert trained.vocab_size == len(ranks) == 1024
    assert [r for _, r in ranks] == list(range(1024))
    assert ranks[:256] == [(bytes([i]), i) for i in range(256)]
    assert len({b for b, _ in ranks}) == 1024  # every token's bytes are distinct
    assert trained.get_pattern() == SPLIT_PATTERN


def test_untrained_encodes_bytes():
    tok = rustbpe.Tokenizer()
    assert tok.get_pattern() == GPT4_PATTERN
    assert tok.encode("hé") == [104, 195, 169]
    assert tok.decode([104, 195, 169]) == "hé"


def test_bad_input_raises_not_panics():
    tok = rustbpe.Tokenizer()
    with pytest.raises(ValueError, match="at least 256"):
        tok.train_from_iterator(iter(["abc"]), 255)
    with pytest.raises(ValueError, match="pattern"):
        tok.train_from_iterator(iter(["abc"]), 300, pattern="(unclosed")
    with pytest.raises(TypeError, match="must yield str, got int"):
        tok.train_from_iterator(iter(["abc", 7]), 300)
    with pytest.raises(TypeError, match="must yield str, got bytes"):
        tok.train_from_iterator(iter([b"abc"]), 300)
    with pytest.raises(TypeError, match="iterable of str"):
        tok.train_from_iterator(42, 300)
    with pytest.raises(ValueError, match="buffer_size"):
        tok.train_from_iterator(iter(["abc"]), 300, buffer_size=0)
    with pytest.raises(ValueError, match="unknown token id"):
        tok.decode([10**6])

    def boom():
        yield "fine"
        raise RuntimeError("from the iterator")
    with pytest.raises(RuntimeError, match="from the iterator"):
        tok.train_from_iterator(boom(), 300)
    tok.encode("still usable")


def test_long_text_and_batch(trained):
    texts = fixture_texts()
    big = "\n\n".join(texts)  # > 64 KB: encoded with the GIL released
    ids = trained.encode(big)
    assert trained.decode(ids) == big
    assert trained.batch_encode(texts) == [trained.encode(t) for t in texts]
    assert len(ids) < len(big.encode()) / 2.5  # 1024 tokens compress Wikipedia > 2.5 bytes/token


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_roundtrip_any_str(trained, s):
    assert trained.decode(trained.encode(s)) == s


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_encode_matches_twin(trained, s):
    twin = BPETokenizer()
    twin.pattern, twin.merges = trained.get_pattern(), trained.get_merges()
    twin._rebuild()
    assert trained.encode(s) == twin.encode(s)
