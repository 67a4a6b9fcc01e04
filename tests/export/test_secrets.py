"""Secrets: encrypted before they enter the task hub, scrubbed from any text that leaves the app."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shared import secrets
from shared.export.destination import Destination

SAS = "sv=2023-11-03&sr=c&sp=cw&se=2030-01-01T00%3A00%3A00Z&sig=AbC%2Bdef%2F123%3D"


def test_protected_destination_holds_no_secret_in_clear_and_round_trips():
    destination = Destination("https://acct.blob.core.windows.net", "export", "acct", sas=SAS)
    protected = destination.protected()
    text = json.dumps(protected)
    assert "AbC" not in text and "sig=" not in text and "sv=" not in text
    assert protected["accountUrl"] == "https://acct.blob.core.windows.net"
    assert Destination.from_protected(protected) == destination


def test_a_changed_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    token = secrets.protect("secret")
    monkeypatch.setenv("Export__SecretKey", Fernet.generate_key().decode())
    with pytest.raises(secrets.SecretKeyError, match="Export__SecretKey changed"):
        secrets.unprotect(token)


def test_rotation_new_key_first_old_key_still_decrypts(monkeypatch: pytest.MonkeyPatch, secret_key: str):
    token = secrets.protect("secret")
    monkeypatch.setenv("Export__SecretKey", f"{Fernet.generate_key().decode()},{secret_key}")
    assert secrets.unprotect(token) == "secret"


def test_a_malformed_key_setting_is_named(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("Export__SecretKey", "not-a-key")
    with pytest.raises(secrets.SecretKeyError, match="Export__SecretKey must hold Fernet keys"):
        secrets.protect("x")


def _protect_in_child(key_file: str, queue) -> None:
    queue.put(secrets.protect("shared secret", {"Export__SecretKeyFile": key_file}))


def test_without_a_setting_processes_share_one_generated_private_key_file(tmp_path: Path):
    key_file = tmp_path / "keys" / "export.key"
    env = {"Export__SecretKeyFile": str(key_file)}
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_protect_in_child, args=(str(key_file), queue)) for _ in range(4)]
    for child in children:
        child.start()
    tokens = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join()
    assert all(secrets.unprotect(t, env) == "shared secret" for t in tokens)
    assert key_file.stat().st_mode & 0o077 == 0
    assert list(key_file.parent.iterdir()) == [key_file]


def test_a_key_file_that_cannot_be_created_asks_for_the_setting(tmp_path: Path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")  # as a read-only package folder would, this refuses a key file below it
    with pytest.raises(secrets.SecretKeyError, match="set Export__SecretKey"):
        secrets.protect("x", {"Export__SecretKeyFile": str(not_a_folder / "export.key")})


@pytest.mark.parametrize("text", [
    f"https://acct.blob.core.windows.net/export/x.dcm?{SAS}",
    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5MTIz==;EndpointSuffix=core.windows.net",
    f"BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature={SAS}",
    "x-ms-copy-source: https://a/b?sv=1&sig%3DAbC%2Bdef%2F123%3D",
    "Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.payload.sig",
])
def test_scrub_removes_every_secret_form(text: str):
    scrubbed = secrets.scrub(text)
    for secret in ("AbC", "c2VjcmV0a2V5MTIz", "eyJ0eXAi"):
        assert secret not in scrubbed
    assert "<redacted>" in scrubbed
