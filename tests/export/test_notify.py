"""The notification's pure part (shared/export/notify.py) and the export orchestrator's one call to it.

The name resolver is the one thing replaced here, and only where a test needs a DNS answer no server here can
give (a name resolving to a private address, a name whose answer changes between the checks): a function with
socket.getaddrinfo's shape. Deliveries go over real TLS to the local receiver (tests/export/receiver.py).
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrations.export import COMMIT, COPY
from orchestrations.notify import START
from shared.errors import ClientError
from shared.export.notify import (
    AddressRefused,
    Notification,
    NotificationPolicy,
    check_url,
    deliver,
    outcome,
    parse_notification,
    sign,
)
from shared.export.work import Committed, Copied

from .orchestrating import Execution
from .receiver import NAME, SECRET, Receiver
from .test_orchestrator import HREF, checkpoint, expanded, instances

PUBLIC = "93.184.216.34"


def answering(*answers: str):
    """A resolver giving `answers[0]` at the first lookup, `answers[1]` at the next…, the last one from then on."""
    given = list(answers)

    def resolve(host: str, port: int, **_: object) -> list[tuple]:
        address = given.pop(0) if len(given) > 1 else given[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
    return resolve


@pytest.mark.parametrize("address, words", [("10.20.30.40", "a private address"), ("192.168.1.5", "a private address"),
                                            ("169.254.169.254", "a link-local address"), ("::1", "a loopback address"),
                                            ("fe80::1", "a link-local address"), ("::ffff:10.0.0.1", "a private address"),
                                            ("100.64.0.1", "not a public address")])
def test_a_name_resolving_to_a_non_public_address_is_a_400_naming_the_url(address: str, words: str) -> None:
    with pytest.raises(ClientError) as refused:
        parse_notification({"url": "https://hooks.example.org/x", "secret": SECRET}, NotificationPolicy(),
                           answering(address))
    assert refused.value.status == 400 and str(refused.value).startswith("notification.url: hooks.example.org")
    assert words in str(refused.value) and SECRET not in str(refused.value)


def test_one_non_public_address_among_the_answers_is_enough_to_refuse() -> None:
    def both(host: str, port: int, **_: object) -> list[tuple]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
    with pytest.raises(AddressRefused, match="10.0.0.7"):
        check_url("https://hooks.example.org/", NotificationPolicy(), both)


def test_a_public_answer_at_validation_that_turns_private_is_refused_when_sending(receiver: Receiver) -> None:
    resolve = answering(PUBLIC, "127.0.0.1")  # DNS rebinding: the second answer points inside
    url = receiver.url.replace("127.0.0.1", NAME)
    notification = parse_notification({"url": url, "secret": SECRET}, NotificationPolicy(), resolve)
    assert notification is not None
    with pytest.raises(AddressRefused, match="loopback"):
        deliver(notification, b"{}", NotificationPolicy(), resolve)
    assert receiver.deliveries == []


def test_the_delivery_connects_to_the_address_it_checked_and_verifies_the_urls_name(
        receiver: Receiver, certificate: tuple[Path, Path]) -> None:
    """NAME resolves nowhere but through this resolver: the delivery reaches the receiver only by connecting to
    the address it checked, and TLS accepts it only because the certificate names NAME."""
    policy = NotificationPolicy(allow_private=True, ca_file=str(certificate[0]))
    deliver(Notification(receiver.url.replace("127.0.0.1", NAME), SECRET), b'{"status": "completed"}', policy,
            answering("127.0.0.1"), now=lambda: 1_700_000_000)
    (delivery,) = receiver.deliveries
    assert delivery.signed and delivery.headers["Host"].startswith(NAME)
    assert delivery.headers["X-Export-Timestamp"] == "1700000000"
    assert delivery.headers["X-Export-Signature"] == sign(SECRET, "1700000000", b'{"status": "completed"}')


def test_an_untrusted_certificate_is_a_failed_delivery_naming_the_ca_setting(receiver: Receiver) -> None:
    with pytest.raises(Exception, match="Export__Notification__CaFile"):
        deliver(Notification(receiver.url, SECRET), b"{}", NotificationPolicy(allow_private=True))
    assert receiver.deliveries == []


def test_the_signature_is_hmac_sha256_of_the_timestamp_then_the_body_as_documented() -> None:
    # the example in docs/NOTIFICATIONS.md, computed there with openssl dgst -sha256 -hmac
    assert sign("0123456789abcdef", "1700000000", b'{"status":"completed"}') == (
        "sha256=12b8b25052aa59e7af4ab74752f982433d52e419958eb247a39c2986c0176675")


def test_the_url_and_the_secret_enter_the_task_hub_encrypted_together(monkeypatch: pytest.MonkeyPatch) -> None:
    notification = Notification("https://hooks.example.org/x?token=abc", SECRET)
    token = notification.protected()
    assert SECRET not in token and "hooks.example.org" not in token and SECRET not in repr(notification)
    assert Notification.from_protected(token) == notification


def test_retries_wait_ten_seconds_then_three_times_longer_each_time_up_to_fifteen_minutes() -> None:
    assert NotificationPolicy().waits() == [10, 30, 90, 270, 810, 900, 900]  # 8 attempts over about 50 minutes
    assert NotificationPolicy.from_settings({"Export__Notification__MaxAttempts": "1"}).waits() == []


def test_the_outcome_is_pending_until_a_notifier_runs_and_then_its_own_word() -> None:
    assert outcome(None) == {"status": "pending", "attempts": 0}
    delivered = {"status": "delivered", "attempts": 3, "deliveredTime": "t"}
    assert outcome({"runtimeStatus": "Completed", "output": json.dumps(delivered)}) == delivered
    assert outcome({"runtimeStatus": "Running", "customStatus": {"status": "retrying", "attempts": 1}})["status"] \
        == "retrying"


def test_the_export_starts_its_notifier_as_its_last_step_when_asked_and_never_otherwise() -> None:
    for token, expected in (("encrypted", [START]), (None, [])):
        run = Execution(replace(checkpoint("1.2"), notification=token))
        run.complete(run.calls[0], expanded(instances("1.2", 1)).to_json())
        run.complete(run.running[0], Copied(1, 0).to_json())
        run.complete(run.running[0], Committed(HREF, "ab" * 32, 120).to_json())
        assert [c.name for c in run.calls[1:]] == [COPY, COMMIT, *expected]
        if token:
            assert not run.state["isDone"] and run.calls[-1].input == {"operationId": "op", "notification": token}
            run.complete(run.running[0], None)
        assert run.state["isDone"] and run.state["output"]["exported"] == 1


def test_a_failed_export_starts_its_notifier_too_and_still_fails_when_the_notifier_cannot_start() -> None:
    failed = checkpoint("3.4").failed("the store is down")
    run = Execution(replace(failed, notification="encrypted"))
    run.complete(run.calls[0], Committed(HREF, "cd" * 32, 80).to_json())
    assert run.calls[-1].name == START
    with pytest.raises(Exception, match="the store is down"):
        run.fail(run.calls[-1], "the task hub is busy")


def test_the_request_carries_the_notification_and_another_secret_makes_another_request() -> None:
    from shared.export.request import parse_export_request

    from .conftest import POLICY

    def parsed(secret: str):
        body = {"destination": {"type": "azureblob", "settings": {"blobContainerUri": "https://a.blob.core.windows.net/out",
                                                                  "useManagedIdentity": True}},
                "Notification": {"URL": f"https://{PUBLIC}/hook", "Secret": secret}}
        return parse_export_request(json.dumps(body).encode(), "application/json", POLICY)

    request = parsed(SECRET)
    assert request.notification == Notification(f"https://{PUBLIC}/hook", SECRET)
    assert request.canonical() != parsed(SECRET + "!").canonical()  # an Idempotency-Key repeat must match it too
