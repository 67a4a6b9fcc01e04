"""Query parsing and matching on their own: the rules every store's rows are checked against."""

from __future__ import annotations

import pytest

from shared.query import QueryError, attributes_from_json, parse_query


@pytest.mark.parametrize(("query", "level"), [
    ({"StudyDate": "20230101-", "PatientID": "P1"}, "study"),
    ({"PatientID": "P1", "Modality": "MR"}, "series"),
    ({"00180015": "BRAIN"}, "series"),  # BodyPartExamined by its tag
    ({"modality": "CT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}, "instance"),  # keywords in any case
])
def test_a_query_is_at_the_level_of_its_deepest_attribute(query, level):
    assert parse_query(query).level == level


@pytest.mark.parametrize(("query", "row", "selected"), [
    ({"StudyDate": "20230101-20231231"}, {"StudyDate": ["20231231"]}, True),  # ends included
    ({"StudyDate": "20230101-20231231"}, {"StudyDate": ["20240101"]}, False),
    ({"StudyDate": "20230101"}, {}, False),  # a row without the attribute matches no value
    ({"StudyDescription": "*"}, {}, True),  # ... but `*`, which matches anything
    ({"StudyTime": "0800-1000"}, {"StudyTime": ["093000.5"]}, True),
    ({"StudyTime": "0800-1000"}, {"StudyTime": ["100001"]}, False),
    ({"AccessionNumber": "acc1"}, {"AccessionNumber": ["ACC1"]}, False),  # case-sensitive but for names
    ({"PatientName": "doe^john"}, {"PatientName": ["Doe^John"]}, True),
    ({"PatientName": "Doe^J?hn"}, {"PatientName": ["Doe^John"]}, True),
    ({"PatientName": "Doe^John"}, {"PatientName": ["Doe?John"]}, False),  # `^` is not a wildcard
    ({"ModalitiesInStudy": "MR"}, {"ModalitiesInStudy": ["CT", "MR"]}, True),  # one of several values
    ({"SeriesNumber": "3"}, {"SeriesNumber": ["003"]}, True),  # numbers as numbers
    ({"StudyInstanceUID": "1.2,1.3"}, {"StudyInstanceUID": ["1.3"]}, True),
    ({"StudyInstanceUID": "1.2,1.3"}, {"StudyInstanceUID": ["1.2.3"]}, False),
])
def test_matching(query, row, selected):
    assert parse_query(query).selects(row) is selected


def test_a_qido_row_reads_as_attributes_person_names_by_their_alphabetic_form():
    row = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]},
           "00080061": {"vr": "CS", "Value": ["CT", "MR"]}, "00200013": {"vr": "IS", "Value": [2]}}
    assert attributes_from_json(row) == {"PatientName": ["Doe^John"], "ModalitiesInStudy": ["CT", "MR"],
                                         "InstanceNumber": ["2"]}


@pytest.mark.parametrize(("query", "key", "words"), [
    ({"StudyDate": "20230230"}, "StudyDate", "YYYYMMDD"),  # no such day
    ({"StudyTime": "2500"}, "StudyTime", "HH"),
    ({"Modality": "mr"}, "Modality", "capitals"),
    ({"SeriesNumber": "three"}, "SeriesNumber", "number"),
    ({"PatientID": "a\\b"}, "PatientID", "backslash"),
    ({"PatientID": ""}, "PatientID", "empty"),
    ({"PatientID": 42}, "PatientID", "string"),
    ({"PatientID": "1", "patientid": "2"}, "patientid", "twice"),
    ({"Rows": "512"}, "Rows", "cannot be matched"),
])
def test_a_bad_query_names_its_key(query, key, words):
    with pytest.raises(QueryError) as refused:
        parse_query(query)
    assert refused.value.key == key and words in str(refused.value)
