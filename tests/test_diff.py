from app.domain.diff import Span, diff_spans


def test_only_the_part_that_changed_is_marked():
    left, right = diff_spans("accounts@maple.co.uk", "accounts@maple.com")
    assert "".join(s.text for s in left) == "accounts@maple.co.uk"
    assert left[0] == Span("equal", "accounts@maple.")
    assert [s.text for s in right if s.op == "insert"] == ["com"]


def test_a_typo_inside_a_word_is_marked_by_character():
    left, right = diff_spans("Harbour Bakery", "Harbor Bakery")
    assert [s for s in left if s.op == "delete"] == [Span("delete", "u")]
    # the side that lacks the 'u' shows where it is missing
    assert right == [Span("equal", "Harbo"), Span("gap", ""), Span("equal", "r Bakery")]


def test_words_added_and_removed():
    left, right = diff_spans("12 Harbour Street", "12 Harbour Street, Suite 4")
    assert left == [Span("equal", "12 Harbour Street"), Span("gap", "")]
    assert right[-1].op == "insert" and "Suite 4" in right[-1].text


def test_empty_side():
    left, right = diff_spans(None, "GB824504000")
    assert left == [] and right == [Span("insert", "GB824504000")]


def test_a_dropped_word_or_full_stop_is_marked_on_both_sides():
    left, right = diff_spans("Old Mill Tearooms Ltd.", "Old Tearooms Ltd")
    assert "".join(s.text for s in right) == "Old Tearooms Ltd"
    assert [s.op for s in left] == ["equal", "delete", "equal", "delete"]
    assert [s.op for s in right] == ["equal", "gap", "equal", "gap"]  # one marker per missing stretch


def test_the_gap_is_painted_as_a_caret_on_the_highlighter():
    from app.ui.diff_view import GAP_MARK, spans_html

    _, right = diff_spans("Acme Ltd.", "Acme Ltd")
    painted = spans_html(right)
    assert painted.count(GAP_MARK) == 1 and "background-color" in painted
