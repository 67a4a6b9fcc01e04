"""Cleaning free text that the profile keeps (Clean Descriptors): another patient's identifiers too.

The instance's own identifying values are known exactly (dataset.py gathers them); anyone else's are
not, so the text is also searched for what identifiers look like, and each is replaced by `***`:
- e-mail addresses, phone numbers (7 or more digits in groups), dates in the usual numeric and
  month-name forms (20210312, 2021-03-12, 12/03/2021, 12-MAR-2021, March 12, 2021, Mar 2021); a
  year alone is kept (JPEG 2000; HIPAA's Safe Harbor keeps years too);
- ID-like tokens: 5 or more digits (MRN12345, 20210312001, 123-45-6789), a letter prefix with 4 or
  more digits (ACC1234), or any token with a digit after an ID word (MRN, ID, ACC, NHS, #...);
- personal names: words in Faker's first- and last-name lists of every locale (lexicon.py). A listed
  name that is also a word of DICOM's own vocabulary (CHEST, BRAIN, WHITE, MARK; lexicon.py) is a
  name only next to a name or after a title (Dr, Mrs...), so descriptors keep their meaning.

The confidence rule: a value is removed whole (`clean` returns None) when a word that is neither a
known name nor a word we know (DICOM vocabulary, imaging terms) stands next to something cleaned,
or after a title, an initial or "patient"/"pt"/"name", or two of them written as a name in capitalised
text ("CT LIVER Xolvani Vebalo"): such a word may be the rest of a name or ID we only
partly recognised ("for Jane Xqzt"). Words without a vowel (FDG, CT) count as abbreviations.

Example:
    >>> clean("CT CHEST for Jane Doe MRN12345")
    'CT CHEST for *** *** ***'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.deid.lexicon import fold, names, vocabulary

CLEANED = "***"
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"


def _always(found: str) -> bool:
    return True


def _phone(found: str) -> bool:
    return sum(c.isdigit() for c in found) >= 7  # fewer: leave it to the ID rule


def _id(found: str) -> bool:
    """5 or more digits, or a prefix of 2+ letters before 4+ digits (ACC1234; not b1000, T1, 5MM)."""
    return sum(c.isdigit() for c in found) >= 5 or re.match(r"#?[A-Za-z]{2,}\d{4}", found) is not None


# Each pattern with the check its matches must pass to be cleaned.
_PATTERNS: list[tuple[re.Pattern, Callable[[str], bool]]] = [(re.compile(p, re.IGNORECASE), check) for p, check in (
    (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", _always),  # e-mail
    (r"(?<![\w.])(?:19|20)?\d{2}[-/.]\d{1,2}[-/.]\d{1,2}(?![\w.])", _always),  # 2021-03-12, 21/03/12
    (r"(?<![\w.])\d{1,2}[-/.]\d{1,2}[-/.](?:19|20)?\d{2}(?![\w.])", _always),  # 12/03/2021, 3.12.21
    (rf"(?<![\w.]){_DAY}[ ./-]?{_MONTH}\.?[ ,./-]*(?:(?:19|20)?\d{{2}})?(?![\w])", _always),  # 12 Mar 2021, 12MAR21
    (rf"(?<![\w.]){_MONTH}\.?[ ./-]?{_DAY},?[ ./-]*(?:19|20)\d{{2}}(?![\w])", _always),  # March 12, 2021
    (rf"(?<![\w.]){_MONTH}\.?[ ,./-]*(?:19|20)\d{{2}}(?![\w])", _always),  # Mar 2021
    (r"(?<![\w+])\+?\(?\d{2,4}\)?(?:[ .-]?\(?\d{2,5}\)?){1,4}(?![\w])", _phone),  # +44 20 7946 0958
    (r"(?<![\w.])#?[A-Za-z0-9]*\d[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?![\w]|\.\d)", _id),  # MRN12345, 123-45-6789
)]
_ID_WORDS = {"mrn", "mr#", "id", "pid", "acc", "accn", "accession", "nhs", "ssn", "hosp", "case", "no", "nr",
             "number", "chart", "record", "dob", "born"}
_TITLES = {"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "sir", "dame", "herr", "frau", "mme", "mlle", "sr", "sra"}
_DOTTED_TITLES = {"dr", "mr", "ms", "sr"}  # also DR, MR (modalities), MS (a disease): titles only with a dot
_CUES = _TITLES | {"patient", "pt", "name", "named"}  # not "for": "FOR INVESTIGATIONAL USE" is ordinary text
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\*\*\*|#|\S")  # words, cleaned marks, anything else
_VOWELS = set("aeiouy")


@dataclass
class _Token:
    text: str
    start: int
    end: int

    @property
    def key(self) -> str:
        return fold(self.text)

    @property
    def is_word(self) -> bool:
        return self.text[0].isalpha()


def clean(text: str, identifying: Iterable[re.Pattern] = ()) -> str | None:
    """`text` with every identifier found replaced by `***`; None when it cannot be cleaned with confidence."""
    for pattern in identifying:
        text = pattern.sub(CLEANED, text)
    text = _by_pattern(text)
    tokens = [_Token(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
    cleaned = _names(tokens)
    if _doubtful(tokens, cleaned):
        return None
    out, at = [], 0
    for i in sorted(cleaned):
        out += [text[at:tokens[i].start], CLEANED]
        at = tokens[i].end
    return "".join(out) + text[at:]


def _by_pattern(text: str) -> str:
    for pattern, check in _PATTERNS:
        text = pattern.sub(functools.partial(_replace_if, check), text)
    text = _after_id_word(text)
    return _NEXT_TO_CLEANED.sub(CLEANED, text)


def _replace_if(check: Callable[[str], bool], match: re.Match) -> str:
    return CLEANED if check(match.group()) else match.group()


# 3 digits or more next to a cleaned number are the rest of it ("303.568.3648 537 013 9097")
_NEXT_TO_CLEANED = re.compile(r"\*\*\*(?:[ .-]?\d{3,}(?![\w.]))+|(?<![\w.])(?:\d{3,}[ .-]?)+\*\*\*")


_AFTER_ID_WORD = re.compile(r"(?i)(?<![\w])((?:" + "|".join(re.escape(w) for w in sorted(_ID_WORDS, key=len, reverse=True))
                            + r")\.?[\s:#=.-]*)([A-Za-z]*\d[\w/-]*)")


def _after_id_word(text: str) -> str:
    """After an ID word, a token with 3 or more digits is an ID whatever its shape ("MRN: 12-3")."""
    return _AFTER_ID_WORD.sub(lambda m: m.group(1) + (CLEANED if sum(c.isdigit() for c in m.group(2)) >= 3
                                                      else m.group(2)), text)


def _neighbours(tokens: list[_Token], i: int, steps: tuple[int, ...] = (-1, 1)) -> list[int]:
    """The words (or cleaned marks) just before and after token `i`, across commas, dots, ^ and = only."""
    found = []
    for step in steps:
        j = i + step
        while 0 <= j < len(tokens) and tokens[j].text in {",", ".", "^", "="}:
            j += step
        if 0 <= j < len(tokens) and (tokens[j].is_word or tokens[j].text == CLEANED):
            found.append(j)
    return found


def _names(tokens: list[_Token]) -> set[int]:
    """Indexes of the words that are names.

    A name is a listed name that is not a vocabulary word; or a listed name next to a name, or after a
    title or an initial ("Jane WHITE", "Dr. Long", "J. Brown"); or, in a DICOM person name (words joined
    by ^: "DOE^JANE"), any word that is not vocabulary.
    """
    listed, words = names(), vocabulary()

    def is_listed(token: _Token, alone: bool) -> bool:
        parts = [p for p in re.split(r"['’-]", token.key) if p]
        return token.is_word and token.key not in _CUES | _ID_WORDS and any(
            p in listed and (not alone or (len(p) >= 3 and p not in words)) for p in parts)

    cleaned = {i for i, t in enumerate(tokens) if is_listed(t, alone=True)}
    cleaned |= {i for i in _person_names(tokens) if tokens[i].is_word and tokens[i].key not in words}
    grown, before = set(cleaned), {i for i in range(len(tokens)) if _title(tokens, i) or _initial(tokens, i)}
    while grown or before:  # a listed word next to a name is a name too, and so is one after a title or an initial
        near = {j for i in grown for j in _neighbours(tokens, i)} | {j for i in before for j in _neighbours(tokens, i, (1,))}
        before = set()
        grown = {j for j in near if j not in cleaned and is_listed(tokens[j], alone=False)}
        cleaned |= grown
    return cleaned


def _person_names(tokens: list[_Token]) -> set[int]:
    """The tokens of DICOM person names written in the text: words joined by ^."""
    return {j for i, t in enumerate(tokens) if t.text == "^" for j in (i - 1, i + 1) if 0 <= j < len(tokens)}


def _title(tokens: list[_Token], i: int) -> bool:
    """A title before a name: "Mrs", "Prof", or "Dr." (without the dot DR, MR, MS are modalities or a disease)."""
    dotted = i + 1 < len(tokens) and tokens[i + 1].text == "."
    return tokens[i].key in _TITLES and (dotted or tokens[i].key not in _DOTTED_TITLES)


def _initial(tokens: list[_Token], i: int) -> bool:
    """An initial before a name: one capital letter and a dot ("J. Doe")."""
    return len(tokens[i].text) == 1 and tokens[i].text.isupper() and i + 1 < len(tokens) and tokens[i + 1].text == "."


def _unknown(token: _Token) -> bool:
    """A word we cannot place: not vocabulary, not a cue, at least 3 letters, with a vowel (else an abbreviation)."""
    key = token.key
    return (token.is_word and len(key) >= 3 and bool(_VOWELS & set(key)) and key not in vocabulary()
            and key not in _CUES | _ID_WORDS)


def _doubtful(tokens: list[_Token], cleaned: set[int]) -> bool:
    """The confidence rule: an unknown word next to something cleaned, or after a title, initial or cue word."""
    marks = cleaned | {i for i, t in enumerate(tokens) if t.text == CLEANED}
    for i in marks:
        if any(j not in marks and _unknown(tokens[j]) for j in _neighbours(tokens, i)):
            return True
    for i, token in enumerate(tokens):
        cue = token.key in _CUES - _TITLES or _title(tokens, i) or _initial(tokens, i)
        if cue and any(j not in marks and _unknown(tokens[j]) for j in _neighbours(tokens, i, (1,))):
            return True
    return _capitalised_pair(tokens, marks)


def _capitalised_pair(tokens: list[_Token], marks: set[int]) -> bool:
    """Two unknown words written as a name ("Xolvani Vebalo") in a text whose other words are in capitals."""
    if not any(t.is_word and len(t.text) >= 3 and t.text.isupper() for t in tokens):
        return False

    def name_like(i: int) -> bool:
        return i not in marks and _unknown(tokens[i]) and tokens[i].text.istitle()

    return any(name_like(i) and any(name_like(j) for j in _neighbours(tokens, i, (1,))) for i in range(len(tokens)))
