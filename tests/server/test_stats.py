"""roost.server.stats: bounded close-code labels, histograms, totals of ended connections."""

from __future__ import annotations

from roost.server.stats import Histogram, ServerStats, close_code_label


def test_close_code_labels_are_bounded() -> None:
    assert close_code_label(1000) == "1000"
    assert close_code_label(1011) == "1011"
    assert {close_code_label(c) for c in range(3000, 4000)} == {"3xxx"}
    assert {close_code_label(c) for c in range(4000, 5000)} == {"4xxx"}
    assert close_code_label(65535) == "other"


def test_histogram_buckets_are_cumulative_with_inf_last() -> None:
    h = Histogram((1, 10))
    for v in (0, 1, 5, 50):
        h.observe(v)
    assert (h.count, h.sum) == (4, 56)
    assert h.cumulative() == [("1.0", 2), ("10.0", 3), ("+Inf", 4)]


def test_ended_connections_add_up_and_the_high_water_is_a_maximum() -> None:
    stats = ServerStats()
    for high in (10, 30, 20):
        stats.channel_ended(
            messages_in=1, messages_out=2, bytes_in=3, bytes_out=4, dropped=5, high_water=high
        )
    assert (stats.messages_in, stats.messages_out, stats.bytes_in, stats.bytes_out) == (3, 6, 9, 12)
    assert (stats.dropped, stats.outbound_high_water) == (15, 30)
    stats.http_request("/a/:id", "GET", 200, 0.002)
    stats.http_request("/a/:id", "GET", 200, 0.2)
    assert stats.http_requests == {("/a/:id", "GET", "200"): 2}
    assert stats.http_durations[("/a/:id", "GET")].count == 2
