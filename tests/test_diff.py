from app.domain.diff import Span, diff_spans


def test_only_the_part_that_changed_is_marked():
    left, right = diff_spans("accounts@maple.co.uk", "accounts@maple.com")
    assert "".join(s.text for s in left) == "accounts@maple.co.uk"
    assert left[0] == Span("equal", "accounts@maple.")
    assert [s.text for s in right if s.op == "insert"] == ["com"]


def test_a_typo_inside_a_word_is_marked_by_character():
    left, right = diff_spans("Harbour Bakery", "Harbor Bakery")
    assert [s for s in left if s.op == "delete"] == [Span("delete", "u")]
    assert right == [Span("equal", "Harbor Bakery")]


def test_words_added_and_removed():
    left, right = diff_spans("12 Harbour Street", "12 Harbour Street, Suite 4")
    assert left == [Span("equal", "12 Harbour Street")]
    assert right[-1].op == "insert" and "Suite 4" in right[-1].text


def test_empty_side():
    left, right = diff_spans(None, "GB824504000")
    assert left == [] and right == [Span("insert", "GB824504000")]
