"""What listing the store costs the export's host in CPU, per 1 000 listed instances.

    .venv/bin/python -m bench.listing [--runs 5] [--studies 10]

Seeds `--studies` studies of 1 000 small instances, then per run lists each study in one page three ways and
measures this process's CPU time (which is what the host's one Python process spends on it, under its GIL):
- `DicomStore.list_page`: what the expand activity does (azure-storage-blob's names-only `list_blob_names`);
- `list_blobs`: what it did before, the SDK turning every blob's XML into a model of some 30 properties;
- the same List Blobs request with `requests` and `xml.etree` picking name, ETag and size: a listing
  without the model, for comparison.
Medians over the runs; the differences are the SDK's per-blob model cost.
"""

from __future__ import annotations

import argparse
import os
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import requests
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from bench.measure import KIB, median
from bench.report import add_results_argument, report, table
from devhost.azurite import ACCOUNT, ACCOUNT_KEY
from shared.stores.blob.store import DicomStore
from shared.uids import parse_identifier
from testkit.seed import seed
from testkit.stack import STORE_CONTAINER, stack

PER_STUDY = 1000


def cpu_ms(work) -> float:
    """CPU milliseconds this process spends on `work()`."""
    before = os.times()
    work()
    after = os.times()
    return (after.user + after.system - before.user - before.system) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--studies", type=int, default=10)
    add_results_argument(parser)
    args = parser.parse_args()
    with stack() as bench:
        studies = seed(bench.store(), args.studies, PER_STUDY, KIB).studies
        store = DicomStore.from_settings({"AzureWebJobsStorage": bench.connection_string})
        sas = generate_container_sas(
            ACCOUNT,
            STORE_CONTAINER,
            account_key=ACCOUNT_KEY,
            expiry=datetime.now(UTC) + timedelta(hours=1),
            permission=ContainerSasPermissions(read=True, list=True),
        )
        session = requests.Session()

        def raw(study: str) -> list[tuple[str, str, int]]:
            query = {"restype": "container", "comp": "list", "prefix": f"{study}/", "maxresults": PER_STUDY}
            body = session.get(f"{store.container.url}?{sas}", params=query, timeout=60).content
            return [
                (
                    b.findtext("Name"),
                    b.findtext("Properties/Etag"),
                    int(b.findtext("Properties/Content-Length")),
                )
                for b in ET.fromstring(body).iter("Blob")
            ]

        ways = {
            "DicomStore.list_page (SDK list_blob_names)": lambda study: store.list_page(
                parse_identifier(study), None, PER_STUDY
            )[0],
            "SDK list_blobs (full model)": lambda study: list(
                next(
                    store.container.list_blobs(
                        name_starts_with=f"{study}/", results_per_page=PER_STUDY
                    ).by_page()
                )
            ),
            "requests + xml.etree (name, ETag, size)": raw,
        }
        found: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        for _ in range(args.runs):
            for way, list_one in ways.items():
                started = time.perf_counter()
                cpu = cpu_ms(lambda list_one=list_one: [list_one(study) for study in studies])
                found[way].append((cpu / args.studies, (time.perf_counter() - started) * 1000 / args.studies))
    rows = [
        [way, f"{median([c for c, _ in runs]):.0f}", f"{median([w for _, w in runs]):.0f}"]
        for way, runs in found.items()
    ]
    report(
        "Listing: CPU per 1 000 listed instances",
        table(["listing", "CPU ms per 1 000 blobs", "wall ms per 1 000 blobs"], rows),
        notes=(
            f"Medians of {args.runs} runs, each listing {args.studies} studies of {PER_STUDY:,} instances, "
            "one page each, from one thread; Azurite on the same machine."
        ),
        results=args.results,
    )


if __name__ == "__main__":
    main()
