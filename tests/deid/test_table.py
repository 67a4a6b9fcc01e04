"""The Table E.1-1 generator on a DocBook table shaped as the standard publishes it, and the table we ship."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import deid_table
from shared.deid.profile import EDITION, TABLE, Profile


def _cell(text: str) -> str:
    return f"<td><para>{text}</para></td>" if text else "<td/>"


def _part15(rows: list[list[str]], headings: list[str] | None = None) -> str:
    heads = "".join(f"<th><para><emphasis>{h}</emphasis></para></th>" for h in headings or [
        "Attribute Name", "Tag", "Retd. (from PS3.6)", "In Std. Comp. IOD (from PS3.3)", *list(deid_table.COLUMNS)[4:]])
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return (f'<book xmlns="http://docbook.org/ns/docbook"><subtitle>DICOM PS3.15 2031a - Security</subtitle>'
            f'<table xml:id="table_E.1-1"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table></book>')


def test_the_generator_keeps_the_standards_codes_per_column(tmp_path: Path):
    source = tmp_path / "part15.xml"
    source.write_text(_part15([
        ["Patient\u200b's Name", "(0010,0010)", "N", "Y", "Z", *[""] * 10],
        ["Acquisition Date", "(0008,0022)", "N", "Y", "X/Z", "", "", "", "", "", "K", "C", "", "", ""],
        ["Overlay Data", "(60xx,3000)", "N", "Y", "X", "", "", "", "", "", "", "", "", "", "C"],
    ]))
    table = deid_table.read_table(source)
    assert table["edition"] == "2031a"
    assert table["rows"] == [
        {"tag": "00100010", "name": "Patient's Name", "retired": False, "basic": "Z"},
        {"tag": "00080022", "name": "Acquisition Date", "retired": False, "basic": "X/Z",
         "retainLongitudinalTemporalInformationFullDates": "K",
         "retainLongitudinalTemporalInformationModifiedDates": "C"},
        {"tag": "60xx3000", "name": "Overlay Data", "retired": False, "basic": "X", "cleanGraphics": "C"},
    ]


@pytest.mark.parametrize(("rows", "headings", "problem"), [
    ([["Name", "(0010,0010)", "N", "Y", "Q", *[""] * 10]], None, "unknown action"),
    ([["Name", "0010,0010", "N", "Y", "Z", *[""] * 10]], None, "has no tag"),
    ([], ["Attribute Name", "Tag"], "unexpected Table E.1-1 columns"),
])
def test_the_generator_refuses_a_table_it_does_not_understand(tmp_path: Path, rows, headings, problem):
    source = tmp_path / "part15.xml"
    source.write_text(_part15(rows, headings))
    with pytest.raises(ValueError, match=problem):
        deid_table.read_table(source)


def test_the_shipped_table_is_the_2023b_edition_with_its_known_actions():
    shipped = json.loads(TABLE.read_text(encoding="utf-8"))
    assert (EDITION, len(shipped["rows"])) == ("2023b", 611)
    basic, uids = Profile(), Profile.basic(["retainUids"])
    assert [basic.action(t) for t in (0x00100010, 0x0020000D, 0x00081030, 0x60023000)] == ["Z", "U", "X", "X"]
    assert uids.action(0x0020000D) == "K" and basic.action(0x00080060) is None  # Modality is not listed: kept
