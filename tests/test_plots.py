"""Line plots: many series stay distinguishable (own colours, one legend below the panels)."""

from __future__ import annotations

from PIL import Image

from keytrack.ablations.plots import LEGEND_INSIDE_MAX, Panel, Series, _distinct, save_line_plot


def test_series_styles_are_distinct_for_many_labels():
    styles = {(_distinct(i)["color"], _distinct(i)["linestyle"]) for i in range(40)}
    assert len(styles) == 40


def _plot(path, n):
    series = [Series(f"method {i}", [1, 2, 4], [i, i + 1.0, i + 2.0]) for i in range(n)]
    panels = [Panel("%IDSW", series, "GT"), Panel("%IDSW", series[::-1], "predicted")]
    return save_line_plot(path, panels, xlabel="stride", title="t", xticks=[1, 2, 4])


def test_many_series_get_a_legend_below_the_panels(tmp_path):
    few = Image.open(_plot(tmp_path / "few.png", 2))
    many = Image.open(_plot(tmp_path / "many.png", LEGEND_INSIDE_MAX + 9))
    assert few.width == many.width
    # 17 labels in 4 columns: 5 legend rows below the panels make the figure taller
    assert many.height - few.height == round(120 * 0.22 * 5)
