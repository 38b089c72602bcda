"""Chart geometry: reasons' signed bars and the contributions' waterfall."""

import pytest

from retainwise.entrypoints.charts import REASON_WIDTH, largest_share, reason_bars, waterfall


def test_a_reason_reads_as_words_a_share_and_a_bar_from_the_middle():
    up, down = reason_bars(["Contract is Month-to-month (+0.42)", "tenure is 60 (-0.21)", ""])
    assert (up.words, up.share, up.css) == ("Contract is Month-to-month", 0.42, "up")
    assert (down.words, down.share, down.css) == ("tenure is 60", -0.21, "down")
    half = REASON_WIDTH / 2
    assert (up.x, up.width) == (half, pytest.approx(half))  # the largest fills its half
    assert down.x + down.width == pytest.approx(half)  # a negative bar ends at the middle
    assert down.width == pytest.approx(half / 2)


def test_a_reason_that_names_what_changed_keeps_what_it_was():
    named, plain = reason_bars(
        ["Contract is Month-to-month (+0.42, was One year)", "tenure is 3 (+0.21)"]
    )
    assert (named.words, named.share, named.was) == ("Contract is Month-to-month", 0.42, "One year")
    assert plain.was is None
    (odd,) = reason_bars(["PaymentMethod is Mailed check (+0.10, was Bank transfer (automatic))"])
    assert (odd.words, odd.was) == ("PaymentMethod is Mailed check", "Bank transfer (automatic)")


def test_bars_share_a_scale_across_rows():
    rows = [{"a": "x is 1 (+0.10)", "b": ""}, {"a": "y is 2 (-0.80)", "b": "z is 3 (+0.40)"}]
    scale = largest_share(rows, ["a", "b"])
    assert scale == 0.8
    (small,) = reason_bars([rows[0]["a"]], scale)
    assert small.width == pytest.approx(REASON_WIDTH / 2 / 8)


def test_text_that_is_not_a_reason_draws_no_bar():
    assert reason_bars(["plan is gold", "(+0.4)x", "missing"]) == []


def test_the_waterfall_walks_from_the_base_value_to_the_total():
    chart = waterfall(
        "w", "t", -1.0, [("a", 0.5), ("b", -0.25), ("c", 2.0)], total_label="Score", width=600
    )
    labels = [s.label for s in chart.steps]
    assert labels == ["Base value", "c", "a", "b", "Score"]  # largest |share| first
    assert [s.css for s in chart.steps] == ["base", "up", "up", "down", "total"]
    assert chart.steps[-1].text == "+1.25"
    unit = chart.steps[1].width / 2.0  # px per log-odd
    base, c, a, b, total = chart.steps
    assert base.x + base.width == pytest.approx(chart.zero)  # -1 drawn left of zero
    assert c.x == pytest.approx(chart.zero - 1.0 * unit)  # starts where the base ends
    assert a.x == pytest.approx(c.x + c.width)  # each step starts where the last ended
    assert b.x + b.width == pytest.approx(a.x + a.width)  # a negative step goes back
    assert total.x == pytest.approx(chart.zero) and total.width == pytest.approx(1.25 * unit)


def test_past_the_shown_features_the_rest_is_one_step():
    shares = [(f"f{i}", 0.1 * (i + 1)) for i in range(14)]
    chart = waterfall("w", "t", 0.0, shares, total_label="Score", shown=10)
    assert len(chart.steps) == 13  # base, 10 features, the rest, the score
    assert chart.steps[-2].label == "4 other features"
    assert chart.steps[-2].text == "+1.00"  # 0.1 + 0.2 + 0.3 + 0.4
