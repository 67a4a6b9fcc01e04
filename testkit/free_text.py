"""A generated corpus of descriptors with other people's identifiers in them, and ordinary ones without.

Each sample is an ordinary descriptor with one or two identifiers put in it the ways people write
them ("CT CHEST for Jane Doe MRN12345", "DOE^JANE 12/03/2021 MR BRAIN"). Kinds of identifier:
- `listed name`: first and last names Faker makes for ten locales (the detector's own list: this
  measures the matching, not the list's coverage of the world);
- `unlisted name`: made-up names in no list (syllables), which only the confidence rule can catch;
- `id`, `date`, `phone`, `email`: in the forms of `_ids`, `_dates`, `_phones`, `_emails`.

Ordinary descriptors: the description attributes of pydicom's own test files (written by others:
the fairest check that cleaning leaves ordinary text alone), and generated ones (modality, body
part, contrast, sequence, plane, reason), whose words overlap imaging_terms.txt by construction.

`score` runs a cleaner over the corpus: an identifier is caught when none of its parts (words of 2+
letters, numbers of 2+ digits) is left in the output beyond those of the ordinary text around it.
"""

from __future__ import annotations

import glob
import os
import random
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR", "sv_SE")
KINDS = ("listed name", "unlisted name", "id", "date", "phone", "email")
_MODALITIES = ("CT", "MR", "MRI", "PET/CT", "US", "XR", "NM", "MG", "CR", "DX", "CTA", "MRA")
_PARTS = ("CHEST", "HEAD", "BRAIN", "ABDOMEN", "PELVIS", "ABD/PELVIS", "KNEE", "L-SPINE", "C-SPINE", "T-SPINE",
          "HIP", "SHOULDER", "ANKLE", "WRIST", "HAND", "FOOT", "NECK", "ORBITS", "SINUSES", "LIVER", "KIDNEYS",
          "PROSTATE", "BREAST", "CARDIAC", "CORONARY", "AORTA", "CAROTIDS", "WHOLE BODY", "LUNG", "HUMERUS")
_CONTRAST = ("", "W CONTRAST", "WO CONTRAST", "W/WO CONTRAST", "WITH IV CONTRAST", "NON CONTRAST", "W/O", "+C")
_SEQUENCES = ("", "T1 AX", "T2 SAG", "FLAIR COR", "DWI b1000", "ADC", "SWI", "3D TOF", "MPRAGE", "STIR COR",
              "PD FS SAG", "LOCALIZER", "SCOUT", "5MM", "1.25MM BONE", "SOFT TISSUE", "LUNG WINDOW", "MIP",
              "MPR COR", "AP", "PA", "LAT", "2 VIEWS", "AXIAL 2.5", "T1 POST GAD", "DYN ARTERIAL", "PORTAL VENOUS")
_REASONS = ("", "for PE", "for trauma", "follow up", "post op", "pre op", "R/O fracture", "eval mass", "screening",
            "biopsy guided", "stroke protocol", "routine")
_CONNECTIONS = ("{d} for {i}", "{i} {d}", "{d} - {i}", "{d} ({i})", "{d}, pt {i}", "{d} {i}", "{i}: {d}",
                "{d} patient {i}")
_SYLLABLES = ("ka", "lo", "vi", "ren", "dal", "mur", "zi", "qua", "tor", "bex", "yul", "fen", "gri", "om", "sav")
_NOT_IDENTIFYING = {"dr", "mrs", "mrn", "acc", "id", "nhs", "da", "de", "la", "le", "van", "von", "der", "den", "del",
                    "di", "du", "dos", "das", "do", "ten", "ter"}
# Descriptors named after people (eponyms): diseases, fractures, views. Some eponyms are among the commonest
# surnames (Smith, Jones, Bennett, Barton, Harris) and are cleaned: that is counted here, not hidden.
EPONYMOUS = (
    "MR BRAIN ALZHEIMER PROTOCOL", "CT HODGKIN STAGING", "PARKINSON DAT SCAN", "MR CROHN ENTEROGRAPHY",
    "US WILMS TUMOR FOLLOW UP", "MR KNEE BAKER CYST", "XR WRIST COLLES FRACTURE", "MR SHOULDER BANKART LESION",
    "MR FOOT MORTON NEUROMA", "MR ARNOLD CHIARI", "NM BONE PAGET DISEASE", "US THYROID HASHIMOTO",
    "NM THYROID GRAVES DISEASE", "MR EWING SARCOMA FOLLOW UP", "XR SINUSES WATERS VIEW", "XR SKULL TOWNE VIEW",
    "XR KNEE MERCHANT VIEW", "XR KNEE ROSENBERG VIEW", "XR PELVIS JUDET VIEWS", "MR DIXON FAT WATER",
    "XR WRIST SMITH FRACTURE", "XR FOOT JONES FRACTURE", "XR THUMB BENNETT FRACTURE", "XR WRIST BARTON FRACTURE",
    "XR HEEL HARRIS VIEW", "XR SHOULDER HILL-SACHS", "XR KNEE SEGOND FRACTURE", "XR ANKLE MAISONNEUVE",
    "XR HIP LEGG-CALVE-PERTHES", "MR WRIST KIENBOCK", "CT ABDOMEN MECKEL SCAN", "MR TRENDELENBURG",
    "Achilles Tendon US", "Swimmers view C-spine", "Brown-Sequard MR C-spine", "Raynaud hand thermography",
)
DESCRIPTION_KEYWORDS = ("StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments",
                        "PerformedProcedureStepDescription", "RequestedProcedureDescription", "DerivationDescription")


@dataclass(frozen=True)
class Sample:
    text: str
    ordinary: str  # the descriptor the identifiers were put in
    identifiers: tuple[tuple[str, str], ...]  # (kind, identifier as written)


@dataclass(frozen=True)
class Score:
    caught: Counter  # kind -> identifiers caught
    total: Counter  # kind -> identifiers
    removed: int  # samples whose whole value was removed
    samples: int

    def rate(self, kind: str | None = None) -> float:
        caught = self.caught[kind] if kind else sum(self.caught.values())
        total = self.total[kind] if kind else sum(self.total.values())
        return caught / total if total else 1.0


def pydicom_descriptors() -> list[str]:
    """The description values of pydicom's own test files (each once)."""
    import pydicom

    found: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "**", "*"),
                              recursive=True):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
                found.update(str(ds.get(k)) for k in DESCRIPTION_KEYWORDS if ds.get(k))
            except Exception:  # noqa: BLE001, S112 - not a DICOM file, or a value pydicom cannot decode
                continue
    return sorted(found)


def ordinary(rng: random.Random) -> str:
    """A generated ordinary descriptor: modality, body part, and maybe contrast, sequence, reason."""
    parts = [rng.choice(_MODALITIES), rng.choice(_PARTS), rng.choice(_CONTRAST), rng.choice(_SEQUENCES),
             rng.choice(_REASONS)]
    text = " ".join(p for p in parts if p)
    return text if rng.random() < 0.6 else text.title() if rng.random() < 0.5 else text.lower()


def corpus(count: int, seed: int = 21) -> list[Sample]:
    """`count` samples, the same ones for the same seed."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {locale: Faker(locale) for locale in LOCALES}
    for n, faker in enumerate(fakers.values()):
        faker.seed_instance(seed + n)
    samples = []
    for _ in range(count):
        kinds = rng.sample(KINDS, rng.choice((1, 1, 2)))
        made = [(kind, _identifier(kind, rng, fakers[rng.choice(LOCALES)])) for kind in kinds]
        descriptor = ordinary(rng)
        text = descriptor
        for _, identifier in made:
            text = rng.choice(_CONNECTIONS).format(d=text, i=identifier)
        samples.append(Sample(text, descriptor, tuple(made)))
    return samples


def _identifier(kind: str, rng: random.Random, faker) -> str:
    if kind == "listed name":
        return _name(rng, faker.first_name(), faker.last_name())
    if kind == "unlisted name":
        made = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize() for _ in range(2)]
        return _name(rng, *made)
    def digits(n: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(n))

    if kind == "id":
        return rng.choice((f"MRN{digits(5)}", f"MRN: {digits(8)}", f"ACC{digits(10)}", f"A{digits(7)}",
                           f"#{digits(6)}", f"{digits(3)}-{digits(2)}-{digits(4)}", f"ID {digits(6)}",
                           f"{digits(3)} {digits(3)} {digits(4)}", f"NHS {digits(10)}", f"{digits(8)}"))
    if kind == "date":
        day = faker.date_between(start_date="-90y", end_date="today")
        return day.strftime(rng.choice(("%Y%m%d", "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%y", "%d.%m.%Y", "%d %b %Y",
                                        "%d-%b-%Y", "%B %d, %Y", "%b %Y", "%d%b%Y"))).upper()
    if kind == "phone":
        return rng.choice((f"+44 20 {digits(4)} {digits(4)}", f"({digits(3)}) {digits(3)}-{digits(4)}",
                           f"{digits(3)}-{digits(3)}-{digits(4)}", f"{digits(3)}.{digits(3)}.{digits(4)}",
                           f"0{digits(2)} {digits(4)} {digits(4)}", f"+1-{digits(3)}-{digits(3)}-{digits(4)}",
                           f"07{digits(3)} {digits(6)}", f"+49 {digits(3)} {digits(7)}"))
    return faker.email()


def _name(rng: random.Random, first: str, last: str) -> str:
    return rng.choice((f"{first} {last}", f"{last.upper()}^{first.upper()}", f"{last}, {first}", f"Dr. {last}",
                       f"{first[0]}. {last}", f"{first.upper()} {last.upper()}", f"Mrs {last}", f"{last}^{first}"))


def parts(identifier: str) -> list[str]:
    """What must not be left of an identifier: its words of 2+ letters and numbers of 2+ digits (titles, ID words
    and surname particles such as "da" or "van" aside: alone they identify no one)."""
    words = [w for w in re.findall(r"[^\W\d_]{2,}", identifier) if w.lower() not in _NOT_IDENTIFYING]
    return words + re.findall(r"\d{2,}", identifier)


def leaked(identifier: str, ordinary_text: str, output: str | None) -> bool:
    """Whether some part of `identifier` is in `output` more often than the ordinary text accounts for."""
    if output is None:
        return False
    out, base = output.lower(), ordinary_text.lower()
    return any(out.count(p.lower()) > base.count(p.lower()) for p in parts(identifier))


def score(samples: list[Sample], cleaner: Callable[[str], str | None]) -> Score:
    caught: Counter = Counter()
    total: Counter = Counter()
    removed = 0
    for sample in samples:
        output = cleaner(sample.text)
        removed += output is None
        for kind, identifier in sample.identifiers:
            total[kind] += 1
            caught[kind] += not leaked(identifier, sample.ordinary, output)
    return Score(caught, total, removed, len(samples))
