"""The completion notification through the host: a signed POST of the final status to a local HTTPS receiver
(tests/export/receiver.py: a self-signed certificate made here, trusted through Export__Notification__CaFile),
retried until it is taken, for a completed and a canceled export; the secret shown nowhere; and the URLs a
notification may not go to refused with a 400 before anything starts, and again when it is sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import requests

from shared.export.notify import Notification
from testkit.exporting import (
    WEBHOOK,
    Hosts,
    durable,
    export_body,
    finished,
    host_fixtures,
    start,
    view,
)
from testkit.host import Host, wait_for
from testkit.seed import put_study
from tests.export.receiver import SECRET, Receiver
from tests.security.test_secrets import everything_readable

hosts, store, destination = host_fixtures("notify-hosts")
RETRY = {"Export__Notification__FirstRetryIntervalSeconds": "0.3", "Export__Notification__MaxAttempts": "4"}


def trusting(hosts: Hosts, certificate: tuple[Path, Path], **settings: str) -> Host:
    """A host that may notify a loopback receiver and trusts its certificate, with small, slow batches."""
    return hosts(Export__Notification__AllowPrivateAddresses="true", Export__Notification__CaFile=str(certificate[0]),
                 Export__BatchSize="2", Export__MaxParallelBatches="1", **RETRY, **settings)


def notifying_export(hosts: Hosts, store, destination, certificate: tuple[Path, Path], receiver: Receiver,
                     count: int) -> tuple[Host, dict, dict[str, bytes]]:
    """An export of a new study of `count` instances, notifying `receiver`: (its host, its 202 body, the files)."""
    host = trusting(hosts, certificate)
    study, stored = put_study(store, count)
    body = export_body([study], destination, hosts.connection_string)
    body["notification"] = {"url": receiver.url, "secret": SECRET}
    return host, start(host, body), stored


def notified(href: str, status: str = "delivered") -> dict:
    """The operation once its notification is `status` (it is settled after the export has ended)."""
    return wait_for(lambda: (v := view(href)).get("notification", {}).get("status") == status and v, timeout=120,
                    message=f"the notification of {href} to be {status}")


def secret_shown(host: Host, operation_id: str, texts: dict[str, str]) -> list[str]:
    """Where the secret, or the URL's path and query (which may carry a token too), can be read in clear."""
    texts = {**texts, **everything_readable(host, operation_id), "host log": host.log(),
             "notifier status": json.dumps(durable(host, f"{operation_id}:notify", showInput="true",
                                                   showHistory="true", showHistoryOutput="true"))}
    hub = [p for p in host.data_dir.rglob("*") if p.is_file()]  # the SQLite task hub, its WAL and shm
    found = []
    for needle in (SECRET, "/hook?source=test"):
        found += [f"{needle} in {where}" for where, text in texts.items() if needle in text]
        found += [f"{needle} in {p}" for p in hub if needle.encode() in p.read_bytes()]
    return found


def test_a_receiver_that_fails_twice_gets_the_signed_final_status_on_the_third_attempt(
        hosts, store, destination, certificate, receiver) -> None:
    receiver.failures = 2
    host, operation, stored = notifying_export(hosts, store, destination, certificate, receiver, 3)
    done = finished(operation["href"])
    final = notified(operation["href"])

    assert done["status"] == "completed" and done["results"]["exported"] == len(stored)
    assert [d.answered for d in receiver.deliveries] == [503, 503, 204]
    assert all(d.signed and d.path == "/hook?source=test" for d in receiver.deliveries)
    assert all(abs(int(d.headers["X-Export-Timestamp"]) - int(receiver.deliveries[0].headers["X-Export-Timestamp"]))
               < 600 for d in receiver.deliveries)
    sent = receiver.deliveries[-1].status
    assert sent == {k: v for k, v in final.items() if k != "notification"}  # what GET /v1/operations/{id} says
    assert final["notification"]["status"] == "delivered"
    assert final["notification"]["attempts"] == 3 and final["notification"]["deliveredTime"]
    assert "lastError" not in final["notification"]
    errors_log = destination.download_blob(f"{operation['id']}/errors.log").readall().decode()
    assert secret_shown(host, operation["id"], {"202": json.dumps(operation), "errors.log": errors_log}) == []


def test_a_canceled_export_notifies_its_cancel_and_again_its_end_after_a_retry(
        hosts, store, destination, certificate, receiver) -> None:
    host, operation, stored = notifying_export(hosts, store, destination, certificate, receiver, 40)
    wait_for(lambda: view(operation["href"])["results"]["exported"] > 0, message="the first files")
    assert view(operation["href"])["notification"] == {"status": "pending", "attempts": 0}  # running: not yet

    r = requests.post(f"{host.base_url}/v1/operations/{operation['id']}/cancel", timeout=60)
    assert r.status_code == 202, r.text

    final = notified(operation["href"])
    assert final["status"] == "canceled"
    assert [(d.answered, d.signed, d.status["status"]) for d in receiver.deliveries] == [(204, True, "canceled")]
    assert receiver.deliveries[0].status["results"] == final["results"]

    r = requests.post(f"{host.base_url}/v1/operations/{operation['id']}/retry", timeout=60)
    assert r.status_code == 202, r.text
    wait_for(lambda: len(receiver.deliveries) == 2, timeout=180, message="the retried export's notification")
    assert (receiver.deliveries[1].signed, receiver.deliveries[1].status["status"]) == (True, "completed")
    assert receiver.deliveries[1].status["results"]["exported"] == len(stored)
    again = notified(operation["href"])["notification"]
    assert again["attempts"] == 1 and again["deliveredTime"] > final["notification"]["deliveredTime"]
    assert secret_shown(host, operation["id"], {}) == []


def test_a_receiver_never_reached_leaves_the_last_error_and_the_export_ended(
        hosts, store, destination, certificate, receiver) -> None:
    receiver.failures = 99
    _, operation, _ = notifying_export(hosts, store, destination, certificate, receiver, 2)
    retrying = notified(operation["href"], "retrying")  # the export's own status has ended meanwhile
    assert retrying["status"] == "completed" and retrying["notification"]["nextAttemptTime"]

    failed = notified(operation["href"], "failed")["notification"]
    assert failed["attempts"] == failed["maxAttempts"] == 4 == len(receiver.deliveries)
    assert failed["lastError"] == "127.0.0.1 answered 503 Service Unavailable" and failed["lastAttemptTime"]


def test_urls_a_notification_may_not_go_to_are_400s_naming_the_field_and_nothing_starts(hosts, destination) -> None:
    host = hosts()  # the default: public addresses only
    cases = [
        ("http://hooks.example.org/x", "notification.url", "https"),
        ("https://127.0.0.1:8443/x", "notification.url", "loopback"),
        ("https://localhost:8443/x", "notification.url", "loopback"),  # a name that resolves to a loopback address
        ("https://10.1.2.3/x", "notification.url", "private"),
        ("https://169.254.169.254/latest", "notification.url", "link-local"),
        ("https://[::1]/x", "notification.url", "loopback"),
        ("https://user:pw@hooks.example.org/x", "notification.url", "user name"),
        ("ftp://hooks.example.org/x", "notification.url", "https"),
    ]
    problems = []
    for url, field, words in cases:
        body = export_body(["1.2.3"], destination, hosts.connection_string)
        body["notification"] = {"url": url, "secret": SECRET}
        r = requests.post(f"{host.base_url}/export", json=body, timeout=60)
        if r.status_code != 400 or not r.json()["error"].startswith(field) or words not in r.json()["error"]:
            problems.append(f"{url}: {r.status_code} {r.text[:300]}")
        if SECRET in r.text:
            problems.append(f"{url}: the secret is quoted")
    for notification, field in (({"url": "https://hooks.example.org/x", "secret": "short"}, "notification.secret"),
                                ({"url": "https://hooks.example.org/x"}, "notification.secret"),
                                ({"secret": SECRET}, "notification.url"),
                                ({"url": "https://hooks.example.org/x", "secret": SECRET, "x": 1}, "notification.x"),
                                ("https://hooks.example.org/x", "notification")):
        body = {**export_body(["1.2.3"], destination, hosts.connection_string), "notification": notification}
        r = requests.post(f"{host.base_url}/export", json=body, timeout=60)
        if r.status_code != 400 or field not in r.json()["error"]:
            problems.append(f"{notification}: {r.status_code} {r.text[:300]}")
    assert problems == []
    assert list(destination.list_blobs()) == []  # no errors.log: nothing started


def test_a_loopback_receiver_is_refused_again_when_sending(hosts, store, destination, certificate, receiver) -> None:
    """A notifier started through the durable API (as an operator could, with any input), past the request's
    checks, on a host that allows public addresses only: the delivery checks the address again."""
    host = hosts(Export__Notification__CaFile=str(certificate[0]), **RETRY)
    study, _ = put_study(store, 1)
    operation = start(host, export_body([study], destination, hosts.connection_string))
    finished(operation["href"])
    token = Notification(receiver.url, SECRET).protected({"Export__SecretKey": host.env["Export__SecretKey"]})
    instance = f"{operation['id']}:notify"
    r = requests.post(f"{host.base_url}{WEBHOOK}/orchestrators/export_notifier/{instance}", timeout=60,
                      json={"operationId": operation["id"], "notification": token, "waits": [0.2]})
    assert r.status_code == 202, r.text

    outcome = wait_for(lambda: (d := durable(host, instance))["runtimeStatus"] == "Completed" and d["output"],
                       timeout=120, message="the notifier to end")
    assert outcome["status"] == "failed" and outcome["attempts"] == 2
    assert "127.0.0.1 is a loopback address" in outcome["lastError"]
    assert receiver.deliveries == []
