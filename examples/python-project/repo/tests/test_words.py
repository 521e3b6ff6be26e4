from textkit import words


def test_words_are_lowercased_in_order():
    assert words("Hello, big World") == ["hello", "big", "world"]


def test_apostrophes_stay_inside_words():
    assert words("It's fine") == ["it's", "fine"]


def test_empty_text_has_no_words():
    assert words("") == []
