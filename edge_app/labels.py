"""The kit's label set and the mappings from each dataset's own labels to it.

Every stage imports these: a model's output index ``i`` always means ``LABELS[i]``.
"""

from __future__ import annotations

from affectlite.errors import InputError

LABELS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
NUM_CLASSES = len(LABELS)
RESERVED_LABELS = frozenset({"uncertain"})
"""Words the kit itself writes in a face's ``label``: no bundle may name a class so."""
LABELS_7: tuple[str, ...] = LABELS[:7]
"""The 7-class variant (no contempt), as in FER2013, RAF-DB and AffectNet-7."""

# AffectNet "expression" column: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust,
# 6 Anger, 7 Contempt; 8 None, 9 Uncertain, 10 No-Face are not emotions and are dropped.
AFFECTNET: dict[int, int] = {i: i for i in range(8)}

# FER2013 "emotion" column: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral.
FER2013: dict[int, int] = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
FER2013_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# FER+ label.csv vote columns, in file order, after the image name and face box.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "not_a_face",
)
FERPLUS: dict[int, int] = {0: 0, 1: 1, 2: 3, 3: 2, 4: 6, 5: 5, 6: 4, 7: 7}
"""FER+ vote column index → kit label index (columns 8 unknown and 9 not-a-face have none)."""

# RAF-DB basic list_patition_label.txt: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness,
# 6 Anger, 7 Neutral.
RAFDB: dict[int, int] = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}

_ALIASES = {
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
    "angry": "anger",
}


def label_index(name: str) -> int:
    """Returns the kit's index for a class name, accepting common dataset spellings.

    Raises:
        ValueError: if the name is no known emotion.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LABELS:
        raise InputError(f"Unknown emotion label {name!r}; expected one of {', '.join(LABELS)}.")
    return LABELS.index(key)
