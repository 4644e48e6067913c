"""Synthetic expressive faces: the kit's embedded default dataset (NumPy + OpenCV only).

Every face is drawn by the same function from a random identity (face shape, skin tone, hair,
feature sizes and spacing), a random pose, lighting, blur, noise and a cluttered background; the
class changes only the expression geometry (brows, eyelids, mouth, nose wrinkle, cheek folds).
Expressions are cartoon extremes at 85–100 % intensity, with thick lines and large features, and
the nuisance (roll ±10°, blur, noise, lighting) is moderate, so the eight classes stay clearly
separable at 48 px. Accuracy on this data says the pipeline works, not that a model reads real
faces: print :data:`SYNTHETIC_NOTE` beside it.

Modules, from data to pictures:

- :mod:`.expressions`: what each class does to a face, and its random draw;
- :mod:`.identities`: who is drawn (proportions and colours);
- :mod:`.canvas`: drawing in head units, colours and curves;
- :mod:`.features`: head, eyes, brows, nose and mouth;
- :mod:`.scenes`: posing faces on backgrounds, camera effects, datasets and frames;
- :mod:`.layouts`: datasets written as AffectNet, FER+ or class folders lay them out.
"""

from __future__ import annotations

from .expressions import EXPRESSIONS, Expression, sample_expression
from .features import draw_face
from .identities import Identity, sample_identity
from .layouts import LAYOUTS, write_dataset
from .scenes import Pose, background, make_dataset, make_scene, render_face, sample_pose

SYNTHETIC_NOTE = "synthetic"
"""Print this beside any accuracy measured on synthetic faces."""

__all__ = [
    "EXPRESSIONS",
    "LAYOUTS",
    "SYNTHETIC_NOTE",
    "Expression",
    "Identity",
    "Pose",
    "background",
    "draw_face",
    "make_dataset",
    "make_scene",
    "render_face",
    "sample_expression",
    "sample_identity",
    "sample_pose",
    "write_dataset",
]
