"""POST /export bodies: every refusal is the right status with a message naming the field (no storage)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shared.errors import ClientError
from shared.export.request import parse_export_request
from shared.export.settings import ExportSettings
from shared.uids import Identifier

POLICY = ExportSettings(allow_emulator=True, max_request_bytes=8192)
EMULATOR = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUz"
            "FT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
SAS = "sv=2023-11-03&sr=c&sp=cw&se=2030-01-01T00%3A00%3A00Z&sig=c2VjcmV0c2lnbmF0dXJl"
AZURE_URI = "https://acct.blob.core.windows.net/export"


def body(values=("1.2.3",), destination=None, source_key="source", **extra) -> dict:
    return {
        source_key: {"type": "identifiers", "settings": {"values": list(values)}},
        "destination": destination or {"type": "azureblob", "settings": {"blobContainerUri": f"{AZURE_URI}?{SAS}"}},
        **extra,
    }


def blob(**settings) -> dict:
    return {"type": "azureblob", "settings": settings}


def parse(document, content_type="application/json", policy=POLICY):
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_export_request(raw, content_type, policy)


def test_the_published_example_with_its_sources_spelling_and_the_local_emulator():
    request = parse({
        "sources": {"type": "identifiers", "settings": {"values": ["1.2.3", "12.3/4.5.678", "123.456/7.8/9.1011.12"]}},
        "destination": blob(blobContainerName="export", connectionString="UseDevelopmentStorage=true"),
    })
    assert request.identifiers == (
        Identifier("1.2.3"), Identifier("12.3", "4.5.678"), Identifier("123.456", "7.8", "9.1011.12"))
    assert request.destination.container_url == "http://127.0.0.1:10000/devstoreaccount1/export"


def test_names_and_types_are_case_insensitive_and_parts_are_trimmed():
    request = parse({
        "Source": {"Type": "IDENTIFIERS", "Settings": {"Values": [" 1.2.3 / 4.5 "]}},
        "DESTINATION": {"type": "AzureBlob", "settings": {"BlobContainerUri": f"{AZURE_URI}?{SAS}"}},
    })
    assert request.identifiers == (Identifier("1.2.3", "4.5"),)
    assert request.destination.sas == SAS and request.destination.account == "acct"


def test_a_request_without_source_exports_the_whole_store():
    assert parse({"destination": body()["destination"]}).identifiers == ()


def test_repeats_and_identifiers_inside_a_listed_study_are_exported_once():
    request = parse(body(values=["1.2", "1.2/3", "5.6/7/8", "1.2/3/4", "5.6/7/8", "5.6/7"]))
    assert [str(i) for i in request.identifiers] == ["1.2", "5.6/7"]


# (case, body or raw bytes, content type, status, words the message must contain)
REFUSALS = [
    ("wrong content type", body(), "text/plain", 415, "Content-Type"),
    ("no content type", body(), None, 415, "Content-Type"),
    ("not utf-8 charset", body(), "application/json; charset=latin-1", 415, "UTF-8"),
    ("too large", body(values=["1.2.3"] * 2000), "application/json", 413, "Export__MaxRequestBytes"),
    ("not JSON", b"{source:", "application/json", 400, "not valid JSON"),
    ("invalid UTF-8", b'{"source": "\xff"}', "application/json", 400, "UTF-8"),
    ("empty", b"", "application/json", 400, "empty"),
    ("huge number", b'{"source": ' + b"1" * 5000 + b"}", "application/json", 400, "not valid JSON"),
    ("not an object", [1, 2], "application/json", 400, "JSON object"),
    ("duplicate property", b'{"source": {}, "Source": {}}', "application/json", 400, "'Source' appears twice"),
    ("source and sources", body(sources={}), "application/json", 400, "'sources'"),
    ("unknown top-level field", body(callback="x"), "application/json", 400, "unknown property 'callback'"),
    ("null source", {**body(), "source": None}, "application/json", 400, "source is required"),
    ("missing destination", {"source": body()["source"]}, "application/json", 400, "destination is required"),
    ("source not an object", {**body(), "source": "1.2.3"}, "application/json", 400, "source must be an object"),
    ("missing source type", {**body(), "source": {"settings": {"values": ["1.2"]}}}, "application/json", 400,
     "source.type is required"),
    ("unknown source type", {**body(), "source": {"type": "search", "settings": {}}}, "application/json", 400,
     "source.type 'search' is not supported; the source types are 'identifiers' or 'query'"),
    ("unknown source setting", {**body(), "source": {"type": "identifiers", "settings": {"value": ["1"]}}},
     "application/json", 400, "unknown property 'source.settings.value'"),
    ("settings not an object", {**body(), "source": {"type": "identifiers", "settings": ["1.2"]}},
     "application/json", 400, "source.settings must be an object"),
    ("values missing", {**body(), "source": {"type": "identifiers", "settings": {}}}, "application/json", 400,
     "source.settings.values is required"),
    ("values empty", body(values=[]), "application/json", 400, "source.settings.values is empty"),
    ("values not a list", {**body(), "source": {"type": "identifiers", "settings": {"values": "1.2"}}},
     "application/json", 400, "must be a list"),
    ("value not a string", body(values=["1.2", 3]), "application/json", 400, "values[1] must be a string"),
    ("letters in a UID", body(values=["1.2", "1.2/abc"]), "application/json", 400,
     "values[1]: identifier '1.2/abc': the series UID 'abc' must contain only digits"),
    ("UID too long", body(values=["1." * 40 + "1"]), "application/json", 400, "at most 64"),
    ("too many parts", body(values=["1/2/3/4"]), "application/json", 400, "4 parts"),
    ("path traversal", body(values=["1.2/../3"]), "application/json", 400, "values[0]"),
    ("missing destination type", {**body(), "destination": {"settings": {}}}, "application/json", 400,
     "destination.type is required"),
    ("unknown destination type", {**body(), "destination": {"type": "s3", "settings": {}}}, "application/json",
     400, "destination.type 's3' is not supported"),
    ("destination settings not an object", {**body(), "destination": {"type": "azureblob", "settings": "x"}},
     "application/json", 400, "destination.settings must be an object"),
    ("typo in a destination setting", body(destination=blob(blobContainerUrl=AZURE_URI)), "application/json",
     400, "unknown property 'destination.settings.blobContainerUrl'"),
    ("both connection forms", body(destination=blob(connectionString=EMULATOR, blobContainerName="x1y",
                                                     blobContainerUri=f"{AZURE_URI}?{SAS}")),
     "application/json", 400, "not both"),
    ("neither connection form", body(destination=blob()), "application/json", 400,
     "connectionString with blobContainerName, or blobContainerUri"),
    ("connection string without container", body(destination=blob(connectionString=EMULATOR)),
     "application/json", 400, "blobContainerName is required"),
    ("container name Azure rejects", body(destination=blob(connectionString=EMULATOR, blobContainerName="Ex--p")),
     "application/json", 400, "container name 'Ex--p' is not valid"),
    ("container name too short", body(destination=blob(blobContainerUri=f"https://acct.blob.core.windows.net/ab?{SAS}")),
     "application/json", 400, "container name 'ab' is not valid"),
    ("container name not a string", body(destination=blob(blobContainerName=5, connectionString=EMULATOR)),
     "application/json", 400, "blobContainerName must be a string"),
    ("managed identity with a connection string",
     body(destination=blob(connectionString=EMULATOR, blobContainerName="export", useManagedIdentity=True)),
     "application/json", 400, "useManagedIdentity works with blobContainerUri only"),
    ("managed identity with a SAS", body(destination=blob(blobContainerUri=f"{AZURE_URI}?{SAS}",
                                                          useManagedIdentity=True)),
     "application/json", 400, "useManagedIdentity cannot be combined with a SAS"),
    ("managed identity not a boolean", body(destination=blob(blobContainerUri=AZURE_URI, useManagedIdentity="yes")),
     "application/json", 400, "useManagedIdentity must be true or false"),
    ("account key for a real account",
     body(destination=blob(connectionString="DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
                                            "EndpointSuffix=core.windows.net", blobContainerName="export")),
     "application/json", 400, "AccountKey is accepted only for the local storage emulator"),
    ("no credential", body(destination=blob(blobContainerUri=AZURE_URI)), "application/json", 400,
     "carries no credential"),
    ("query string that is not a SAS", body(destination=blob(blobContainerUri=f"{AZURE_URI}?a=b")),
     "application/json", 400, "not a SAS token"),
    ("not an Azure host", body(destination=blob(blobContainerUri=f"https://evil.example.com/export?{SAS}")),
     "application/json", 400, "host 'evil.example.com' is not an Azure Storage blob endpoint"),
    ("look-alike host", body(destination=blob(blobContainerUri=f"https://blob.core.windows.net.evil.io/x1y?{SAS}")),
     "application/json", 400, "is not an Azure Storage blob endpoint"),
    ("plain http to Azure", body(destination=blob(blobContainerUri=f"http://acct.blob.core.windows.net/export?{SAS}")),
     "application/json", 400, "must use https"),
    ("user info in the URI", body(destination=blob(blobContainerUri=f"https://u:p@acct.blob.core.windows.net/e1?{SAS}")),
     "application/json", 400, "user name or password"),
    ("extra path in the URI", body(destination=blob(blobContainerUri=f"{AZURE_URI}/deeper?{SAS}")),
     "application/json", 400, "must have the form"),
    ("connection string garbage", body(destination=blob(connectionString="not a connection string",
                                                        blobContainerName="export")),
     "application/json", 400, "part 1 is not Key=Value"),
]


@pytest.mark.parametrize("case,document,content_type,status,words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused(case, document, content_type, status, words):
    with pytest.raises(ClientError) as refused:
        parse(document, content_type)
    assert refused.value.status == status
    assert words in str(refused.value)
    assert "c2VjcmV0c2lnbmF0dXJl" not in str(refused.value)


def test_a_body_nested_deeper_than_the_parser_goes_is_refused_in_words():
    """Python 3.13's parser takes the 4 000 levels that fit the default limit; deeper needs a larger one."""
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ClientError) as refused:
        parse(deep, policy=replace(POLICY, max_request_bytes=len(deep)))
    assert refused.value.status == 400
    assert "nested too deeply" in str(refused.value)


def test_emulator_refused_unless_allowed():
    with pytest.raises(ClientError, match="Export__AllowEmulator"):
        parse(body(destination=blob(connectionString=EMULATOR, blobContainerName="export")),
              policy=ExportSettings())


def test_sas_refused_when_the_server_disallows_sas_tokens():
    with pytest.raises(ClientError, match="Export__AllowSasTokens"):
        parse(body(), policy=ExportSettings(allow_sas_tokens=False))


def test_public_container_accepted_only_when_allowed():
    document = body(destination=blob(blobContainerUri=AZURE_URI))
    assert parse(document, policy=ExportSettings(allow_public_access=True)).destination.sas is None


def test_sovereign_clouds_and_configured_suffixes():
    for host in ("acct.blob.core.chinacloudapi.cn", "acct.blob.core.usgovcloudapi.net", "acct.blob.core.cloudapi.de"):
        assert parse(body(destination=blob(blobContainerUri=f"https://{host}/export?{SAS}"))).destination.account == "acct"
    policy = ExportSettings(allowed_host_suffixes=("blob.storage.azure.net",))
    assert parse(body(destination=blob(blobContainerUri=f"https://acct.z9.blob.storage.azure.net/export?{SAS}")),
                 policy=policy).destination.container == "export"
    with pytest.raises(ClientError, match="not an Azure Storage blob endpoint"):
        parse(body(), policy=policy)


def test_sas_in_a_connection_string():
    request = parse(body(destination=blob(
        connectionString=f"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature={SAS}",
        blobContainerName="export")))
    assert request.destination.sas == SAS
    assert request.destination.container_url == AZURE_URI
    assert SAS not in repr(request)


def test_deidentification_is_optional_and_case_insensitive():
    assert parse(body()).deidentification is None
    request = parse(body(DeIdentification={"Profile": "BASIC", "Options": ["RetainUIDs", "cleandescriptors"]}))
    assert request.deidentification.options == ("retainUids", "cleanDescriptors")
    assert request.canonical() != parse(body()).canonical()  # an Idempotency-Key repeat must match it too


@pytest.mark.parametrize(("deidentification", "field"), [
    ({}, "deidentification.profile"),
    ({"profile": "expert"}, "deidentification.profile"),
    ({"profile": 1}, "deidentification.profile"),
    ({"profile": "basic", "options": "retainUids"}, "deidentification.options"),
    ({"profile": "basic", "options": ["retainUids", "retainPets"]}, "deidentification.options[1]"),
    ({"profile": "basic", "options": [None]}, "deidentification.options[0]"),
    ({"profile": "basic", "options": ["retainLongitudinalTemporalInformationFullDates",
                                      "retainLongitudinalTemporalInformationModifiedDates"]},
     "deidentification.options[1]"),
    ({"profile": "basic", "option": []}, "deidentification.option"),
    ("basic", "deidentification"),
])
def test_bad_deidentification_is_refused_naming_the_field(deidentification, field):
    with pytest.raises(ClientError) as refused:
        parse(body(deidentification=deidentification))
    assert refused.value.status == 400 and refused.value.field == field
    assert field in str(refused.value)
