"""The client side of STOW-RS: the multipart body as a server splits it, and reading the answer."""

from __future__ import annotations

import email
from pathlib import Path

import pydicom

from cli.stow import MultipartBody, failure_reason, parse_stow_response

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def test_multipart_body_holds_each_file_unchanged() -> None:
    paths = [TEST_FILES / "CT_small.dcm", TEST_FILES / "MR_small.dcm"]
    seen: list[int] = []
    body = MultipartBody(paths, seen.append)
    data = b""
    while chunk := body.read(8192):
        data += chunk
    assert len(data) == len(body) == sum(seen)
    assert body.content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    message = email.message_from_bytes(f"Content-Type: {body.content_type}\r\n\r\n".encode() + data)
    parts = message.get_payload()
    assert [p.get_content_type() for p in parts] == ["application/dicom"] * 2
    assert [p.get_payload(decode=True) for p in parts] == [p.read_bytes() for p in paths]


def _uid(value: str) -> dict:
    return {"vr": "UI", "Value": [value]}


def test_stow_answer_gives_stored_urls_and_failure_reasons_in_words() -> None:
    answer = {
        "00081199": {"vr": "SQ", "Value": [
            {"00081155": _uid("1.2.3"), "00081190": {"vr": "UR", "Value": ["http://h/studies/1/series/2/instances/1.2.3"]}},
        ]},
        "00081198": {"vr": "SQ", "Value": [
            {"00081155": _uid("1.2.4"), "00081197": {"vr": "US", "Value": [0xA900]},
             "00000902": {"vr": "LO", "Value": ["Study Instance UID does not match the URL"]}},
            {"00081197": {"vr": "US", "Value": [0xC000]}},
        ]},
    }
    stored, failed = parse_stow_response(answer)
    assert stored == {"1.2.3": "http://h/studies/1/series/2/instances/1.2.3"}
    assert failed == [("1.2.4", "Study Instance UID does not match the URL (0xA900 data set does not match SOP class)"),
                      (None, "0xC000 cannot understand")]
    assert parse_stow_response("not an object") == ({}, [])
    assert failure_reason({}) == "rejected, no reason given"
