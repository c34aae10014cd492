"""Symbols and bars over HTTP (TestClient, real catalog on both backends, Parquet on tmp_path)."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from storage.barquery import read_arrow_stream
from tests.unit.serve.conftest import listing
from tests.unit.serve.fakes import daily_bars


@pytest.fixture
def universe(api):
    api.context.catalog.symbols.upsert_many(
        [
            listing("VEA", "ASX", currency="AUD", name="Viva Energy Group Ltd"),
            listing("VEA", "ARCA", name="Vanguard FTSE Developed Markets ETF", universe="etfs"),
            listing("AAPL", "NASDAQ", name="Apple Inc"),
            listing("ZZZ", "NYSE", valid=False),
        ]
    )
    api.context.bars.write("AAPL.NASDAQ", "1d", daily_bars("2024-01-02", 252))
    return api


def test_symbols_are_listed_by_page_with_universe_and_validity_filters(universe):
    page = universe.get("/symbols", params={"limit": 2}).json()
    assert [s["instrument"] for s in page["items"]] == ["AAPL.NASDAQ", "VEA.ARCA"]
    assert (page["total"], page["next_offset"]) == (4, 2)
    rest = universe.get("/symbols", params={"limit": 2, "offset": 2}).json()
    assert [s["instrument"] for s in rest["items"]] == ["VEA.ASX", "ZZZ.NYSE"]
    assert rest["next_offset"] is None
    etfs = universe.get("/symbols", params={"universe": "etfs"}).json()
    assert [s["instrument"] for s in etfs["items"]] == ["VEA.ARCA"]
    invalid = universe.get("/symbols", params={"valid": "false"}).json()
    assert [s["instrument"] for s in invalid["items"]] == ["ZZZ.NYSE"]


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 0}, "limit"), ({"offset": -1}, "offset"),
                          ({"valid": "maybe"}, "valid")],
)  # fmt: skip
def test_bad_list_parameters_are_422_naming_the_field(universe, params, field):
    response = universe.get("/symbols", params=params)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_one_symbol_by_id_or_unambiguous_symbol_and_ambiguity_lists_candidates(universe):
    assert universe.get("/symbols/AAPL").json()["instrument"] == "AAPL.NASDAQ"
    assert universe.get("/symbols/vea.asx").json()["name"] == "Viva Energy Group Ltd"
    ambiguous = universe.get("/symbols/VEA")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["field"] == "instrument"
    assert ambiguous.json()["candidates"] == ["VEA.ARCA", "VEA.ASX"]


def test_a_malformed_instrument_is_422_naming_instrument_and_the_form(universe):
    for bad in ("BHP..ASX", "-X", "A.1B"):
        response = universe.get(f"/symbols/{bad}")
        assert response.status_code == 422, bad
        body = response.json()
        assert body["field"] == "instrument" and "SYMBOL.VENUE" in body["detail"]


def test_an_unknown_instrument_is_404_with_a_suggestion(universe):
    response = universe.get("/symbols/APPL.NASDAQ")
    assert response.status_code == 404
    assert "AAPL.NASDAQ" in response.json()["detail"]


def test_adding_a_listing_asks_ib_first_and_unknown_ones_add_nothing(universe):
    universe.context.catalog.symbols.delete("VEA.ASX")
    added = universe.post("/symbols", scope="research", json={"instrument": "VEA.ASX"})
    assert added.status_code == 201
    assert added.headers["location"] == "/symbols/VEA.ASX"
    body = added.json()
    assert (body["con_id"], body["valid"], body["universe"]) == (4242, True, "custom")
    unknown = universe.post("/symbols", json={"instrument": "NOPE.ASX"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "instrument"
    assert universe.get("/symbols/NOPE.ASX").status_code == 404
    venue = universe.post("/symbols", json={"instrument": "BHP.MOON"})
    assert venue.status_code == 422 and "known venues" in venue.json()["detail"]
    extra = universe.post("/symbols", json={"instrument": "VEA.ASX", "force": True})
    assert extra.status_code == 422 and extra.json()["field"] == "force"


def test_deleting_a_listing_answers_it_and_it_is_gone(universe):
    gone = universe.delete("/symbols/ZZZ.NYSE", scope="research")
    assert gone.status_code == 200 and gone.json()["instrument"] == "ZZZ.NYSE"
    assert universe.get("/symbols/ZZZ.NYSE").status_code == 404
    assert universe.delete("/symbols/ZZZ.NYSE").status_code == 404


def test_bars_page_through_json_by_cursor_and_by_offset(universe):
    first = universe.get("/bars/AAPL", params={"limit": 100}).json()
    assert (first["instrument"], first["bar_size"], first["count"]) == ("AAPL.NASDAQ", "1d", 100)
    assert first["bars"][0]["ts"].startswith("2024-01-02") and first["bars"][0]["wap"] is None
    seen = [b["ts"] for b in first["bars"]]
    cursor = first["next_cursor"]
    while cursor:
        page = universe.get("/bars/AAPL", params={"limit": 100, "cursor": cursor}).json()
        seen += [b["ts"] for b in page["bars"]]
        cursor = page["next_cursor"]
    assert len(seen) == 252 and len(set(seen)) == 252
    by_offset = universe.get("/bars/AAPL", params={"limit": 100, "offset": 200}).json()
    assert by_offset["count"] == 52 and by_offset["next_offset"] is None
    assert [b["ts"] for b in by_offset["bars"]] == seen[200:]


def test_bars_as_csv_and_arrow_by_accept_or_format_hold_the_range(universe):
    params = {"start": "2024-03-01", "end": "2024-04-01"}
    csv = universe.get("/bars/AAPL.NASDAQ", params=params, headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(csv.text))
    assert list(frame.columns)[:5] == ["ts", "open", "high", "low", "close"] and len(frame) == 21
    arrow = universe.get("/bars/AAPL.NASDAQ", params={**params, "format": "arrow"})
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = read_arrow_stream(arrow.content)
    assert len(table) == 21 and table["close"].tolist() == frame["close"].tolist()


def test_never_collected_bars_are_404_naming_instrument_size_and_command(universe):
    response = universe.get("/bars/VEA.ASX", params={"bar_size": "1h", "start": "2024-01-02"})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "VEA.ASX" in detail and "1h" in detail
    assert "scizor collect history VEA.ASX --bar-size 1h --start 2024-01-02" in detail


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bar_size": "2d"}, "bar_size"), ({"start": "soon"}, "start"),
        ({"start": "2024-05-01", "end": "2024-04-01"}, "start"), ({"format": "xml"}, "format"),
        ({"cursor": "abc"}, "cursor"), ({"cursor": "1", "offset": 3}, "cursor"),
        ({"limit": 10_001}, "limit"),
    ],
)  # fmt: skip
def test_bad_bar_parameters_are_422_naming_the_field(universe, params, field):
    response = universe.get("/bars/AAPL.NASDAQ", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_an_unknown_query_parameter_is_422_listing_the_ones_the_route_takes(universe):
    response = universe.get("/bars/AAPL.NASDAQ", params={"bar-size": "1h"})
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "bar-size" and "bar_size" in body["detail"]
    assert universe.get("/strategies", params={"x": "1"}).json()["detail"].endswith("none")


def test_coverage_lists_every_listing_with_its_stored_range_and_none_for_the_rest(universe):
    api = universe
    gap_start = pd.Timestamp("2025-03-03", tz="UTC")  # a second range, after a hole
    api.context.bars.write("VEA.ASX", "1d", daily_bars("2025-01-02", 20))
    api.context.bars.write("VEA.ASX", "1d", daily_bars("2025-03-03", 10))
    page = api.get("/coverage", "read").json()
    rows = {r["instrument"]: r for r in page["items"]}
    assert page["total"] == 4 == len(rows) and page["stored"] == 2
    aapl = rows["AAPL.NASDAQ"]
    stored = api.context.bars.read("AAPL.NASDAQ", "1d")
    assert pd.Timestamp(aapl["first"]) == stored.index[0] and aapl["gaps"] == 0
    assert pd.Timestamp(aapl["last"]) > stored.index[-1]  # the end of the last bar, exclusive
    vea = rows["VEA.ASX"]
    assert vea["ranges"] == 2 and vea["gaps"] == 1 and pd.Timestamp(vea["last"]) > gap_start
    assert rows["ZZZ.NYSE"]["first"] is None and rows["ZZZ.NYSE"]["ranges"] == 0
    etfs = api.get("/coverage?universe=etfs", "read").json()
    assert [r["instrument"] for r in etfs["items"]] == ["VEA.ARCA"]
    assert api.get("/coverage?bar_size=2d", "read").status_code == 422
    assert api.client.get("/coverage").status_code == 401  # a token, as every data route


def test_the_console_page_is_served_without_a_token_and_calls_only_this_api(api):
    page = api.client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "EMERGENCY STOP" in page.text and "sessionStorage" in page.text
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for path in ("/trading/deployments", "/trading/emergency-stop", "/positions", "/orders",
                 "/executions", "/risk/state", "/risk/events", "/coverage", "/backtests",
                 "/optimizations", "/trading/performance"):  # fmt: skip
        assert f'"{path}' in page.text or f"`{path}" in page.text, path
