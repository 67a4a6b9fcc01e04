"""The word lists that free-text cleaning uses: personal names, and words known not to be names.

Names: Faker's first- and last-name lists of every locale. Faker (MIT) is released every few weeks and
keeps per-locale lists of common given names and surnames, about 55 000 words in all across its locales;
they are read once per process from its person providers (no network, no data file of our own).
Parts of a compound surname ("de la Cruz") count when they have 4 letters or more.

Vocabulary: the words of DICOM's own terms as pydicom ships them (the code meanings of its concept
dictionary: anatomy, procedures, findings, each word seen in lower case somewhere, so that names in
them such as Meyer or Robert stay names, except eponyms before 's or a noun such as disease, sign or
view: Baker's cyst, Ewing sarcoma; and the attribute keywords split into words), plus the
imaging terms of `imaging_terms.txt` (sequence names, abbreviations, stop words). A listed name that is
also a vocabulary word (CHEST, BRAIN, WHITE, MARK) is a name only in context (descriptors.py).

Every word is compared folded: lower case, without accents.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import unicodedata
from pathlib import Path

IMAGING_TERMS = Path(__file__).with_name("imaging_terms.txt")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_LETTERS = re.compile(r"[^\W\d_]+")
# A capitalised word that names a disease, sign or procedure: "Baker's cyst", "Ewing sarcoma"
_EPONYM = re.compile(r"\b([A-Z][a-z]+)(?:['’]s?\b| (?:disease|syndrome|fracture|tumou?r|sign|lesion|cyst|neuroma|"
                     r"sarcoma|lymphoma|carcinoma|malformation|anomaly|palsy|classification|procedure|operation|"
                     r"test|score|grade|stage|view|projection|position)\b)")


def fold(word: str) -> str:
    """`word` lower-cased without accents: how names and vocabulary are compared."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


@functools.cache
def names() -> frozenset[str]:
    """Every listed first and last name, folded."""
    from faker.providers import person  # about 0.8 s: only once a descriptor is cleaned

    found: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{module.name}"), "Provider", None)
        for attribute in dir(provider) if provider else ():
            if any(kind in attribute for kind in ("first_name", "middle_name", "last_name")):  # male_last_names...
                listed = getattr(provider, attribute)
                if isinstance(listed, dict | list | tuple):
                    for name in listed:
                        parts = fold(str(name)).split()
                        found.update(parts if len(parts) == 1 else (p for p in parts if len(p) >= 4))
    return frozenset(found)


@functools.cache
def vocabulary() -> frozenset[str]:
    """Words that are not names by themselves: DICOM's terms and keywords, and our imaging terms."""
    from pydicom.datadict import DicomDictionary
    from pydicom.sr._concepts_dict import concepts

    words: set[str] = set()
    for scheme in concepts.values():
        for by_code in scheme.values():
            for meaning, _ in by_code.values():  # type: ignore[attr-defined]
                words.update(fold(w) for w in _LETTERS.findall(meaning) if w.islower())  # a word, not a name
                words.update(fold(w) for w in _EPONYM.findall(meaning))  # Baker's cyst, Ewing sarcoma
    for entry in DicomDictionary.values():
        words.update(fold(w) for w in _CAMEL.findall(entry[4]))
    for line in IMAGING_TERMS.read_text(encoding="utf-8").splitlines():
        words.update(fold(w) for w in line.split("#")[0].split())
    return frozenset(words)
