"""Choosing instances by query (QIDO-RS matching, PS3.18 §8.3.4 and PS3.4 C.2.2.2), whichever the store.

A `Query` is a level and key -> value matches, keyed by DICOM keyword:

    >>> q = parse_query({"ModalitiesInStudy": "CT", "StudyDate": "20230101-"})
    >>> q.level, dict(q.matches)
    ('study', {'ModalitiesInStudy': 'CT', 'StudyDate': '20230101-'})
    >>> q.matches_attributes({"ModalitiesInStudy": ["CT", "SR"], "StudyDate": ["20230405"]})
    True

Stores search with it (`shared.stores.interface.Store.search_page`) and check every row they get back
with `Query.matches_attributes`, so every store selects the same instances whatever its server matches.
"""

from shared.query.query import (
    LEVELS,
    Attributes,
    Query,
    QueryError,
    attributes_from_dataset,
    attributes_from_json,
    parse_query,
)

__all__ = ["LEVELS", "Attributes", "Query", "QueryError", "attributes_from_dataset", "attributes_from_json",
           "parse_query"]
