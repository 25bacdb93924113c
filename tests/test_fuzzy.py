"""Fuzzy matching with explanations; a small version of the benchmark's precision and recall."""

from app.domain.models import Party
from app.sync.fuzzy import dedupe, match
from bench.matchgen import sides


def test_explained_links_reviews_and_non_matches():
    left = [("a", Party("company", "Harbour Design Ltd", email="accounts@harbourdesign.com", tax_id="GB824504000")),
            ("b", Party("company", "Copper Joinery", email="hi@copperjoinery.io")),
            ("c", Party("company", "Maple Bakery"))]
    right = [("x", Party("company", "HARBOR DESIGN LIMITED", email="billing@harbourdesign.com",
                         tax_id="GB 824 5040 00")),
             ("y", Party("company", "Joinery Copper", email="hi@copperjoinery.io")),
             ("z", Party("company", "Maple Brewing"))]
    got = {c.left: c for c in match(left, right)}
    assert got["a"].right == "x" and got["a"].decision == "link"
    assert "same tax ID" in got["a"].explanation and "same email domain" in got["a"].explanation
    assert got["b"].right == "y" and got["b"].decision == "link"
    assert "c" not in got or got["c"].decision != "link"


def test_different_tax_ids_keep_lookalikes_apart():
    left = [("a", Party("company", "Atlas Motors Ltd", tax_id="GB824504000"))]
    right = [("x", Party("company", "Atlas Motors Limited", tax_id="GB410423468"))]
    assert [c.decision for c in match(left, right)] in ([], ["review"])


def test_duplicates_within_one_side():
    recs = [("1", Party("company", "Cedar Brewing LLC", email="a@cedarbrewing.com")),
            ("2", Party("company", "CEDAR BREWING L.L.C.", email="b@cedarbrewing.com")),
            ("3", Party("company", "Quarry Dental"))]
    pairs = dedupe(recs)
    assert [(tuple(sorted((c.left, c.right))), c.decision) for c in pairs] == [(("1", "2"), "link")]


def test_precision_and_recall_on_generated_data():
    left, right, truth = sides(3000, seed=3)
    links = {(c.left, c.right) for c in match(left, right) if c.decision == "link"}
    tp = len(links & truth)
    assert tp / max(1, len(links)) >= 0.99
    assert tp / len(truth) >= 0.93
