"""The server-side SVG charts: structure, labels, accessibility, escaping."""
import xml.etree.ElementTree as ET

from app.web import charts

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(markup) -> ET.Element:
    return ET.fromstring(str(markup))


def test_bar_chart_has_title_desc_axes_and_a_label_per_bar():
    svg = parse(charts.bar_chart(chart_id="c1", title="Renewal rate", description="by month",
                                 labels=["2026-01", "2026-02", "2026-03"],
                                 values=[0.5, None, 0.8125], value_format=charts.pct, y_max=1.0))
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "c1-title c1-desc"
    assert svg.find("s:title", NS).text == "Renewal rate"
    assert svg.find("s:desc", NS).text == "by month"
    bars = svg.findall("s:g[@class='bar']", NS)
    assert [b.get("data-key") for b in bars] == ["2026-01", "2026-02", "2026-03"]
    assert [b.get("data-value") for b in bars] == ["0.5", "", "0.8125"]
    labels = [b.find("s:text[@class='data-label']", NS).text for b in bars]
    assert labels == ["50%", "–", "81%"]
    assert bars[1].find("s:rect", NS) is None  # no bar for a missing value
    ticks = [t.text for t in svg.findall("s:text", NS) if t.get("text-anchor") == "end"]
    assert ticks == ["0%", "25%", "50%", "75%", "100%"]
    assert "style" not in str(charts.bar_chart(chart_id="c", title="t", description="d",
                                               labels=["a"], values=[1]))


def test_text_is_escaped():
    markup = str(charts.bar_chart(chart_id="x\"><script>", title="<b>t</b>", description="&",
                                  labels=["<img src=x>"], values=[3]))
    assert "<script>" not in markup and "<img" not in markup and "<b>" not in markup
    parse(markup)  # still well-formed XML


def test_empty_chart_says_so():
    svg = parse(charts.bar_chart(chart_id="e", title="t", description="d", labels=[], values=[]))
    assert svg.get("data-kind") == "empty"
    assert "No data" in "".join(svg.itertext())


def test_line_chart_gaps_and_legend():
    svg = parse(charts.line_chart(chart_id="l", title="t", description="d",
                                  labels=["a", "b", "c"],
                                  series=[charts.Series("retention", [0.9, None, 0.8]),
                                          charts.Series("churn", [0.1, 0.2, 0.3])],
                                  value_format=charts.pct, y_max=1.0))
    assert len(svg.findall("s:polyline", NS)) == 3  # retention broken by the gap
    points = svg.findall("s:g[@class='point']", NS)
    assert [(p.get("data-series"), p.get("data-key")) for p in points][:2] == [
        ("retention", "a"), ("retention", "c")]
    assert "retention" in "".join(svg.itertext()) and "churn" in "".join(svg.itertext())


def test_heatmap_cells_and_short_rows():
    svg = parse(charts.heatmap(chart_id="h", title="t", description="d",
                               row_labels=["2026-01", "2026-02"], col_labels=["0", "1"],
                               cells=[[1.0, 0.5], [0.75]], row_notes=["10", "4"]))
    cells = svg.findall("s:g[@class='cell']", NS)
    assert [(c.get("data-key"), c.get("data-value")) for c in cells] == [
        ("2026-01:0", "1.0"), ("2026-01:1", "0.5"), ("2026-02:0", "0.75")]
    assert [c.find("s:text", NS).text for c in cells] == ["100%", "50%", "75%"]
    assert "2026-01 (10)" in "".join(svg.itertext())


def test_interval_chart_draws_the_interval_and_the_verdict():
    rows = [charts.Interval("welcome", "Welcome", 0.08, 0.02, 0.14, "lifts renewals"),
            charts.Interval("call", "Call", None, None, None, "too few members to tell")]
    svg = parse(charts.interval_chart(chart_id="i", title="t", description="d", rows=rows))
    groups = svg.findall("s:g[@class='interval']", NS)
    assert groups[0].get("data-low") == "0.02" and groups[0].get("data-high") == "0.14"
    assert groups[0].find("s:line", NS) is not None and groups[0].find("s:circle", NS) is not None
    assert groups[0].find("s:text[@class='verdict']", NS).text == "lifts renewals"
    assert groups[1].find("s:line", NS) is None
    assert groups[1].find("s:text[@class='verdict']", NS).text == "too few members to tell"
    assert charts.points(0.052) == "+5.2 pts" and charts.points(-0.01) == "−1.0 pts"


def test_nice_max():
    assert [charts.nice_max(v) for v in (0, 0.7, 3, 11, 240)] == [1.0, 1.0, 5.0, 20.0, 250.0]
