"""The DICOMweb store against a real Orthanc: QIDO listing with cursors, WADO-RS bytes as stored, refusals."""

from __future__ import annotations

import pytest
import requests

from shared.stores.dicomweb.store import DicomWebStore
from shared.stores.factory import open_store
from shared.stores.interface import InstanceChangedOrGone, StoredInstance, StoreError
from shared.uids import Identifier
from testkit.lanes import assert_lanes_cover_the_store
from testkit.orthanc import PASSWORD, Orthanc

from .conftest import files_as_they_are, make_study, uid


@pytest.fixture(scope="module")
def store(orthanc: Orthanc) -> DicomWebStore:
    return open_store(orthanc.app_settings())


def listed(store: DicomWebStore, identifier: Identifier | None, page_size: int) -> list[str]:
    """Every instance under `identifier`, page by page from the cursors, as paths."""
    names, cursor = [], None
    while True:
        page, cursor = store.list_page(identifier, cursor, page_size)
        assert len(page) <= page_size
        names += [i.blob_name for i in page]
        if cursor is None:
            return names


def read(store: DicomWebStore, name: str) -> bytes:
    study, series, sop = name[:-4].split("/")
    return b"".join(store.open(StoredInstance(study, series, sop, None, None)).chunks())


def test_studies_series_and_instances_list_exactly_their_instances_page_by_page(orthanc, store):
    made = make_study(series=2, instances=4)
    orthanc.stow(*made.values())
    study, series, sop = next(iter(made))[:-4].split("/")

    assert sorted(listed(store, Identifier(study), page_size=3)) == sorted(made)
    assert sorted(listed(store, Identifier(study, series), page_size=3)) == sorted(
        n for n in made if n.startswith(f"{study}/{series}/"))
    assert listed(store, Identifier(study, series, sop), page_size=3) == [f"{study}/{series}/{sop}.dcm"]
    for unknown in (Identifier(uid()), Identifier(study, uid()), Identifier(study, series, uid())):
        assert store.list_page(unknown, None, 10) == ([], None)


def test_the_whole_store_is_every_study_in_bounded_pages(orthanc, store):
    made = {**make_study(1, 3), **make_study(2, 2), **make_study(1, 1)}
    orthanc.stow(*made.values())
    everything = listed(store, None, page_size=2)
    assert set(made) <= set(everything) and len(everything) == len(set(everything))


def test_instances_come_back_byte_for_byte_whatever_their_transfer_syntax(orthanc, store):
    made = files_as_they_are()
    orthanc.stow(*made.values())
    for name, data in made.items():
        opened_size = store.open(StoredInstance(*name[:-4].split("/"), None, None)).size
        assert read(store, name) == data, name
        assert opened_size == len(data)


def test_an_instance_not_on_the_server_is_gone_not_an_outage(store):
    with pytest.raises(InstanceChangedOrGone):
        store.open(StoredInstance(uid(), uid(), uid(), None, None))


def test_wrong_credentials_fail_with_the_reason_and_without_the_password(orthanc):
    wrong = open_store({**orthanc.app_settings(), "DicomStore__Password": "not-the-password"})
    with pytest.raises(StoreError) as refused:
        wrong.list_page(Identifier(uid()), None, 10)
    assert refused.value.status_code == 401
    assert "refused the store's credentials" in str(refused.value)
    assert "not-the-password" not in str(refused.value) and PASSWORD not in str(refused.value)


def test_a_server_that_is_down_is_an_outage_naming_it(tmp_path):
    from devhost.azurite import free_port

    gone = open_store({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": f"http://127.0.0.1:{free_port()}/x"})
    with pytest.raises(StoreError, match="is unreachable"):
        gone.list_page(Identifier("1.2"), None, 10)


def test_a_server_capping_its_results_fails_loudly_instead_of_exporting_part_of_a_study(tmp_path):
    """Orthanc's LimitFindInstances truncates QIDO answers without saying so, and paging on does not get past it."""
    capped = Orthanc(tmp_path / "capped", settings={"LimitFindInstances": 3, "LimitFindResults": 3}).start()
    try:
        made = make_study(series=1, instances=8)
        capped.stow(*made.values())
        study = next(iter(made)).split("/")[0]
        with pytest.raises(StoreError) as capped_error:
            listed(open_store(capped.app_settings()), Identifier(study), page_size=100)
        assert f"of the 8 instances it reports for study {study}" in str(capped_error.value)
        assert "caps its query results" in str(capped_error.value)
    finally:
        capped.stop()


class _ReplayServer:
    """A loopback HTTP server answering every GET with one recorded reply, cut at `keep` bytes of its body
    (after `busy` answers of 503 with Retry-After: 1), and remembering when requests came and their
    Authorization headers: for faults Orthanc cannot be made to show."""

    def __init__(self, headers: dict[str, str], body: bytes, keep: int, declare_length: bool = True, busy: int = 0):
        import http.server
        import threading
        import time

        replay = self
        self.authorizations: list[str | None] = []
        self.times: list[float] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                replay.authorizations.append(self.headers.get("Authorization"))
                replay.times.append(time.monotonic())
                if len(replay.times) <= busy:
                    self.send_response(503)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                if declare_length:  # else the reply ends where the connection closes (HTTP/1.0)
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[:keep])

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _recorded_reply(orthanc: Orthanc) -> tuple[dict[str, str], bytes, str]:
    made = make_study(1, 1)
    orthanc.stow(*made.values())
    name = next(iter(made))
    study, series, sop = name[:-4].split("/")
    r = requests.get(f"{orthanc.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}", auth=orthanc.auth,
                     headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}, timeout=30)
    return {"Content-Type": r.headers["Content-Type"]}, r.content, name


@pytest.mark.parametrize("declare_length", [True, False])
@pytest.mark.parametrize("cut", [-4, -60, 200])  # in the closing boundary, just before it, in the part's bytes
def test_a_reply_cut_short_is_an_error_never_a_shorter_file(orthanc, cut, declare_length):
    headers, body, name = _recorded_reply(orthanc)
    server = _ReplayServer(headers, body, len(body) + cut if cut < 0 else cut, declare_length)
    try:
        store = open_store({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": server.url})
        with pytest.raises(StoreError, match="cut short"):
            read(store, name)
    finally:
        server.close()


def test_a_whole_reply_from_the_same_server_reads_whole(orthanc):
    headers, body, name = _recorded_reply(orthanc)
    server = _ReplayServer(headers, body, len(body))
    try:
        store = open_store({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": server.url})
        assert read(store, name) in body and len(read(store, name)) > 1000
    finally:
        server.close()


def test_a_busy_server_is_asked_again_after_its_retry_after(orthanc):
    headers, body, name = _recorded_reply(orthanc)
    server = _ReplayServer(headers, body, len(body), busy=2)
    try:
        store = open_store({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": server.url})
        assert len(read(store, name)) > 1000
    finally:
        server.close()
    assert len(server.times) == 3
    assert all(later - earlier >= 0.95 for earlier, later in zip(server.times, server.times[1:]))


def test_managed_identity_sends_a_token_for_the_azure_dicom_scope_renewed_before_it_expires(orthanc, monkeypatch):
    """No managed identity can exist on this machine: a fake stands in for azure-identity's credential."""
    import time

    from azure.core.credentials import AccessToken

    from shared import credentials

    asked: list[tuple[str, ...]] = []

    class FakeIdentity:
        def get_token(self, *scopes: str, **kwargs) -> AccessToken:
            asked.append(scopes)
            return AccessToken(f"token-{len(asked)}", int(time.time()) + (60 if len(asked) == 1 else 3600))

    monkeypatch.setattr(credentials, "managed_identity_credential", lambda env=None: FakeIdentity())
    headers, body, name = _recorded_reply(orthanc)
    server = _ReplayServer(headers, body, len(body))
    try:
        store = open_store({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": server.url,
                            "DicomStore__Authentication": "managedIdentity"})
        for _ in range(3):
            read(store, name)
    finally:
        server.close()
    # The first token expires within the renewal margin, so the next request fetched another, then kept it.
    assert server.authorizations == ["Bearer token-1", "Bearer token-2", "Bearer token-2"]
    assert asked == [("https://dicom.healthcareapis.azure.com/.default",)] * 2


@pytest.mark.parametrize(("settings", "named"), [
    ({"DicomStore__Type": "orthanc"}, "DicomStore__Type"),
    ({"DicomStore__Type": "dicomweb"}, "DicomStore__DicomWebUrl"),
    ({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "ftp://x/dicom-web"}, "DicomStore__DicomWebUrl"),
    ({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "http://u:p@x/dicom-web"}, "DicomStore__DicomWebUrl"),
    ({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "http://x", "DicomStore__Authentication": "kerberos"},
     "DicomStore__Authentication"),
    ({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "http://x", "DicomStore__Authentication": "basic",
      "DicomStore__Username": "u"}, "DicomStore__Password"),
    ({"DicomStore__Type": "dicomweb", "DicomStore__DicomWebUrl": "http://x", "DicomStore__Authentication": "bearer"},
     "DicomStore__Token"),
])
def test_a_wrong_or_missing_setting_is_named(settings, named):
    from shared.errors import Misconfigured

    with pytest.raises(Misconfigured, match=named):
        open_store(settings)


def test_study_key_ranges_cut_the_dicomweb_store_into_lanes_that_list_it_once(orthanc, store):
    orthanc.stow(*{**make_study(1, 2), **make_study(1, 2), **make_study(2, 1)}.values())
    assert_lanes_cover_the_store(store, 3)
