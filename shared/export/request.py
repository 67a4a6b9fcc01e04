"""The POST /export body, parsed and validated into an `ExportRequest` before anything starts.

Rules (the published API's, plus what its server did where the document is silent):
- Content-Type must be JSON (`application/json` or `*/*+json`, UTF-8) → else 415;
  the body at most `Export__MaxRequestBytes` → else 413; a JSON object → else 400.
- Property names are case-insensitive (`values`, `Values`); `sources` is an alias of `source`.
  The same property twice (in any casing) and unknown properties are refused with 400 naming
  them, so a typo such as `blobContainerUrl` is caught instead of silently ignored.
- Type values are case-insensitive (`identifiers`, `AzureBlob`).
- `source` may be left out: the export then covers the whole store (no identifiers).
- `query` sources (`settings.queries`: a non-empty list of QIDO-RS matches, shared/query/) are
  validated whole here: an unknown attribute, one no level can match, a value unfit for its VR or an
  empty query is a 400 naming `source.settings.queries[i].<key>`.
- Identifiers are `study[/series[/sop]]`; exact repeats and identifiers already covered by
  another one in the list (a series of a listed study) are dropped, so nothing is exported twice.
- `deidentification` (optional): `{"profile": "basic", "options": [...]}`, the PS3.15 Basic
  Application Level Confidentiality Profile with options (shared/deid/profile.py); profile and
  option names are case-insensitive too. Its optional `linkage` is a destination of the same shape
  (the data controller's container for linkage.csv, shared/export/linkage.py), refused when it is
  the destination's own container (same account and container).
- `output` and `metadata` (optional): transcoded DICOM, PNG/JPEG frames, a metadata table
  (shared/outputs/spec.py); without them files are copied as stored.
- `notification` (optional): `{"url": "https://…", "secret": "…"}`, where the final status is POSTed,
  signed (shared/export/notify.py); a URL policy refuses is a 400 naming `notification.url`.
Every error is a `ClientError` whose message starts with the field at fault.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.deid.profile import PROFILE, Profile, ProfileError
from shared.errors import ClientError
from shared.export.destination import SETTINGS, Destination, DestinationRefused, parse_destination
from shared.export.linkage import FIELD as LINKAGE
from shared.export.notify import Notification, NotificationPolicy, parse_notification
from shared.export.settings import ExportSettings
from shared.outputs.spec import OutputSpec, parse_output
from shared.query import Query, QueryError, parse_query
from shared.request_fields import named_fields
from shared.uids import Identifier, parse_identifier


@dataclass(frozen=True)
class ExportRequest:
    identifiers: tuple[Identifier, ...]  # empty: the whole store
    destination: Destination
    deidentification: Profile | None = None
    output: OutputSpec = field(default_factory=OutputSpec)  # the default: files as stored, no metadata table
    queries: tuple[Query, ...] = ()  # a query source: the union of these (identifiers then empty)
    linkage: Destination | None = None  # deidentification.linkage: the controller's container for linkage.csv
    partition: str | None = None  # the store's data partition, from the route (shared/stores/factory.export_partition)
    notification: Notification | None = None  # where the final status is POSTed, signed

    def canonical(self) -> str:
        """One text per distinct request (secrets included): compared, via a keyed digest, on a repeat."""
        d = self.destination
        return json.dumps({
            "identifiers": [str(i) for i in self.identifiers],
            "destination": [d.account_url, d.container, d.sas, d.account_key, d.use_managed_identity],
            "deidentification": self.deidentification and self.deidentification.to_json(),
            "output": None if self.output.plain else self.output.to_json(),
            **({"queries": [q.to_json() for q in self.queries]} if self.queries else {}),
            **({"partition": self.partition} if self.partition else {}),
            **({"linkage": [self.linkage.account_url, self.linkage.container, self.linkage.sas, self.linkage.account_key,
                            self.linkage.use_managed_identity]} if self.linkage else {}),
            **({"notification": [self.notification.url, self.notification.secret]} if self.notification else {}),
        }, sort_keys=True)


def parse_export_request(body: bytes, content_type: str | None, policy: ExportSettings) -> ExportRequest:
    """The request in `body`, or ClientError (400, 413 or 415) saying what is wrong."""
    _check_content_type(content_type)
    if len(body) > policy.max_request_bytes:
        raise ClientError(
            413, f"the request body is {len(body)} bytes; the limit is {policy.max_request_bytes} "
            "(setting Export__MaxRequestBytes)")
    document = _json(body)
    if not isinstance(document, dict):
        raise ClientError(400, f"the request body must be a JSON object, not {_kind(document)}")
    top = named_fields(document, "", ("source", "sources", "destination", "deidentification", "output", "metadata",
                                      "notification"))
    if "source" in top and "sources" in top:
        raise ClientError(400, "give 'source' or its alias 'sources', not both", "source")
    given = "source" in top or "sources" in top
    source = _object(top.get("source", top.get("sources")), "source") if given else None
    destination = _object(top.get("destination"), "destination")
    output = parse_output(top.get("output"), top.get("metadata"))
    identifiers, queries = _source(source) if source is not None else ((), ())
    target = _destination(destination, policy)
    profile, linkage = _deidentification(top.get("deidentification"), policy)
    if linkage and (linkage.account.lower(), linkage.container) == (target.account.lower(), target.container):
        raise ClientError(400, f"{LINKAGE}: the linkage table must go to another container than the destination: "
                          "it links the pseudonyms back to the patients", LINKAGE)
    return ExportRequest(identifiers, target, profile, output, queries, linkage,
                         notification=parse_notification(top.get("notification"), NotificationPolicy.from_settings()))


def _check_content_type(content_type: str | None) -> None:
    media, *params = [p.strip() for p in (content_type or "").split(";")]
    media = media.lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        shown = f"'{content_type[:100]}'" if content_type else "missing"
        raise ClientError(415, f"Content-Type must be application/json; it is {shown}", "Content-Type")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ClientError(415, "the request body must be UTF-8 (Content-Type charset)", "Content-Type")


def _json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ClientError(400, f"the request body is not valid UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise ClientError(400, "the request body is empty; expected a JSON object with source and destination")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise ClientError(
            400, f"the request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise ClientError(400, "the request body is nested too deeply") from None
    except ValueError as error:  # e.g. an integer longer than Python's 4300-digit conversion limit
        raise ClientError(400, f"the request body is not valid JSON: {str(error)[:200]}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key.lower() in seen:
            raise ClientError(400, f"property '{key[:100]}' appears twice (names are case-insensitive)", key[:100])
        seen.add(key.lower())
    return dict(pairs)


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        raise ClientError(400, f"{path} is required", path)
    if not isinstance(value, dict):
        raise ClientError(400, f"{path} must be an object, not {_kind(value)}", path)
    return value


def _type(fields: Mapping[str, Any], path: str, *expected: str) -> str:
    """The type's canonical spelling among `expected`; ClientError naming `<path>.type` otherwise."""
    value = fields.get("type")
    names = " or ".join(f"'{e}'" for e in expected)
    if value is None:
        raise ClientError(400, f"{path}.type is required; expected {names}", f"{path}.type")
    chosen = next((e for e in expected if isinstance(value, str) and value.strip().lower() == e.lower()), None)
    if chosen is None:
        shown = repr(value[:100]) if isinstance(value, str) else _kind(value)
        only = f"the only {path} type is" if len(expected) == 1 else f"the {path} types are"
        raise ClientError(400, f"{path}.type {shown} is not supported; {only} {names}", f"{path}.type")
    return chosen


def _source(source: Mapping[str, Any]) -> tuple[tuple[Identifier, ...], tuple[Query, ...]]:
    """(identifiers, ()) of an `identifiers` source, or ((), queries) of a `query` source."""
    fields = named_fields(source, "source", ("type", "settings"))
    settings = _object(fields.get("settings"), "source.settings")
    if _type(fields, "source", "identifiers", "query") == "query":
        return (), _queries(settings)
    return _identifiers(settings), ()


def _queries(settings: Mapping[str, Any]) -> tuple[Query, ...]:
    return parse_queries(named_fields(settings, "source.settings", ("queries",)).get("queries"),
                         "source.settings.queries")


def parse_queries(queries: Any, path: str) -> tuple[Query, ...]:
    """The queries listed at `path`, each once; ClientError (400) naming `<path>[i].<key>` for a bad one."""
    parsed = []
    for index, query in enumerate(_list(queries, path, "queries (attribute -> QIDO-RS match value)", "objects")):
        try:
            parsed.append(parse_query(query))
        except QueryError as error:
            where = f"{path}[{index}]" + (f".{error.key[:100]}" if error.key else "")
            raise ClientError(400, f"{where}: {str(error)[:600]}", where) from None
    unique: dict[str, Query] = {}
    for query in parsed:  # a repeat selects nothing more
        unique.setdefault(json.dumps(query.to_json(), sort_keys=True), query)
    return tuple(unique.values())


def _identifiers(settings_object: Mapping[str, Any]) -> tuple[Identifier, ...]:
    settings = named_fields(settings_object, "source.settings", ("values",))
    path = "source.settings.values"
    parsed = []
    for index, value in enumerate(_list(settings.get("values"), path, "study[/series[/instance]] identifiers",
                                        "strings")):
        where = f"{path}[{index}]"
        if not isinstance(value, str):
            raise ClientError(400, f"{where} must be a string, not {_kind(value)}", where)
        try:
            parsed.append(parse_identifier(value))
        except ValueError as error:
            raise ClientError(400, f"{where}: {str(error)[:400]}", where) from None
    return _without_overlaps(parsed)


def _list(value: Any, path: str, what: str, items: str) -> list:
    """`value` as a non-empty list; ClientError naming `path` when it is missing, not a list, or empty."""
    if value is None:
        raise ClientError(400, f"{path} is required: a list of {what}", path)
    if not isinstance(value, list):
        raise ClientError(400, f"{path} must be a list of {items}, not {_kind(value)}", path)
    if not value:
        raise ClientError(400, f"{path} is empty; list at least one", path)
    return value


def _without_overlaps(identifiers: list[Identifier]) -> tuple[Identifier, ...]:
    """The identifiers in order, minus repeats and those inside another listed identifier."""
    listed = set(identifiers)
    kept, seen = [], set()
    for identifier in identifiers:
        parts = identifier.parts
        ancestors = (Identifier(*parts[:n]) for n in range(1, len(parts)))
        if identifier in seen or any(a in listed for a in ancestors):
            continue
        seen.add(identifier)
        kept.append(identifier)
    return tuple(kept)


def _destination(destination: Mapping[str, Any], policy: ExportSettings, where: str = "destination") -> Destination:
    """The destination (or another container of the same shape at `where`: deidentification.linkage)."""
    fields = named_fields(destination, where, ("type", "settings"))
    _type(fields, where, "azureblob")
    path = f"{where}.settings"
    settings = named_fields(_object(fields.get("settings"), path), path,
                       ("connectionString", "blobContainerName", "blobContainerUri", "useManagedIdentity"))
    for name in ("connectionString", "blobContainerName", "blobContainerUri"):
        value = settings.get(name)
        if value is not None and not isinstance(value, str):
            raise ClientError(400, f"{path}.{name} must be a string, not {_kind(value)}", f"{path}.{name}")
    managed = settings.get("useManagedIdentity")
    if managed is not None and not isinstance(managed, bool):
        raise ClientError(400, f"{path}.useManagedIdentity must be true or false, not {_kind(managed)}",
                           f"{path}.useManagedIdentity")
    try:
        return parse_destination(
            policy,
            connection_string=(settings.get("connectionString") or "").strip() or None,
            container_name=(settings.get("blobContainerName") or "").strip() or None,
            container_uri=(settings.get("blobContainerUri") or "").strip() or None,
            use_managed_identity=bool(managed),
        )
    except DestinationRefused as refused:  # its messages name destination.settings: say where it really is
        field = (refused.field or SETTINGS).replace("destination.", f"{where}.", 1)
        raise ClientError(400, str(refused).replace("destination.", f"{where}.").replace(
            "destination:", f"{where}:"), field) from None


def _deidentification(value: Any, policy: ExportSettings) -> tuple[Profile | None, Destination | None]:
    """The de-identification profile asked for (None to copy files unchanged), and its linkage container."""
    if value is None:
        return None, None
    path = "deidentification"
    fields = named_fields(_object(value, path), path, ("profile", "options", "linkage"))
    profile = fields.get("profile")
    if profile is None:
        why = " (the linkage table is only for a de-identified export)" if "linkage" in fields else ""
        raise ClientError(400, f"{path}.profile is required{why}; the only profile is '{PROFILE}'", f"{path}.profile")
    if not isinstance(profile, str) or profile.strip().lower() != PROFILE:
        shown = repr(profile[:100]) if isinstance(profile, str) else _kind(profile)
        raise ClientError(400, f"{path}.profile {shown} is not supported; the only profile is '{PROFILE}' "
                           "(PS3.15 Basic Application Level Confidentiality Profile)", f"{path}.profile")
    options = fields.get("options")
    if options is None:
        options = []
    if not isinstance(options, list):
        raise ClientError(400, f"{path}.options must be a list of strings, not {_kind(options)}", f"{path}.options")
    try:
        chosen = Profile.basic(options)
    except ProfileError as refused:
        where = f"{path}.options[{refused.index}]"
        raise ClientError(400, f"{where}: {refused}", where) from None
    linkage = fields.get("linkage")
    return chosen, None if linkage is None else _destination(_object(linkage, LINKAGE), policy, LINKAGE)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
