"""Who is drawn: a random identity's proportions and colours.

Proportions are in head units (head half-height = 1) and drawn uniformly from
:data:`IDENTITY_RANGES`; colours mix a few skin, hair and iris palettes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .canvas import Colour, to_colour


@dataclass(frozen=True)
class Identity:
    """Who is drawn: proportions in head units, colours as RGB int tuples."""

    width: float
    eye_y: float
    eye_spacing: float
    eye_size: float
    eye_tilt: float
    gaze: tuple[float, float]
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    nose_y: float
    mouth_y: float
    mouth_half_width: float
    lip_height: float
    hair_style: int  # 0 bald, 1 short cap, 2 long
    hair_line: float
    hair_angle: float
    skin: Colour
    hair: Colour
    brow: Colour
    lips: Colour
    iris: Colour
    cloth: Colour
    yaw: float  # horizontal shift of the features (head turned)


SKIN_TONES = np.array(
    [(250, 220, 195), (235, 190, 155), (200, 150, 110), (150, 100, 70), (95, 62, 45)]
)
HAIR_COLOURS = np.array(
    [(25, 20, 18), (70, 45, 30), (130, 90, 50), (210, 180, 120), (150, 60, 30), (170, 170, 170)]
)
IRIS_COLOURS = np.array([(60, 40, 25), (90, 120, 160), (80, 110, 70), (40, 30, 25)])
LIP_RED = np.array([150, 50, 60])
HAIR_STYLE_ODDS = (0.15, 0.5, 0.35)  # bald, short cap, long

IDENTITY_RANGES = {  # (low, high) of each uniformly drawn proportion
    "skin_mix": (0, 0.4),  # toward a second skin tone
    "skin_gain": (0.92, 1.05),
    "hair_gain": (0.8, 1.15),
    "lip_skin": (0.5, 0.65),
    "lip_red": (0.3, 0.45),
    "iris_gain": (0.8, 1.2),
    "width": (0.72, 0.86),
    "eye_y": (-0.17, -0.09),
    "eye_spacing": (0.4, 0.46),  # × width
    "eye_size": (0.15, 0.18),
    "eye_tilt": (-0.015, 0.015),
    "gaze_x": (-0.25, 0.25),
    "gaze_y": (-0.1, 0.1),
    "brow_gap": (0.15, 0.19),
    "brow_thickness": (0.08, 0.11),
    "brow_arch": (0.0, 0.04),
    "nose_y": (0.2, 0.26),
    "mouth_y": (0.5, 0.56),
    "mouth_half_width": (0.33, 0.38),  # × width
    "lip_height": (0.05, 0.07),
    "hair_line": (-0.62, -0.48),
    "hair_angle": (-10, 10),
    "yaw": (-0.06, 0.06),
}
_LOW, _HIGH = np.array(list(IDENTITY_RANGES.values()), np.float64).T


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draws a random face identity."""
    drawn = _LOW + (_HIGH - _LOW) * rng.random(len(_LOW))
    values = dict(zip(IDENTITY_RANGES, drawn.tolist(), strict=True))
    skin_index, second_skin, hair_index, iris_index = rng.integers(
        (len(SKIN_TONES) - 1, len(SKIN_TONES), len(HAIR_COLOURS), len(IRIS_COLOURS))
    )
    skin = SKIN_TONES[skin_index]
    skin = (skin + (SKIN_TONES[second_skin] - skin) * values["skin_mix"]) * values["skin_gain"]
    hair = HAIR_COLOURS[hair_index] * values["hair_gain"]
    brow = np.minimum(hair * 0.75, skin * 0.5)  # brows always stand out from the skin
    lips = skin * values["lip_skin"] + LIP_RED * values["lip_red"]
    width = values["width"]
    return Identity(
        width=width,
        eye_y=values["eye_y"],
        eye_spacing=width * values["eye_spacing"],
        eye_size=values["eye_size"],
        eye_tilt=values["eye_tilt"],
        gaze=(values["gaze_x"], values["gaze_y"]),
        brow_gap=values["brow_gap"],
        brow_thickness=values["brow_thickness"],
        brow_arch=values["brow_arch"],
        nose_y=values["nose_y"],
        mouth_y=values["mouth_y"],
        mouth_half_width=width * values["mouth_half_width"],
        lip_height=values["lip_height"],
        hair_style=int(rng.choice(3, p=HAIR_STYLE_ODDS)),
        hair_line=values["hair_line"],
        hair_angle=values["hair_angle"],
        skin=to_colour(skin),
        hair=to_colour(hair),
        brow=to_colour(brow),
        lips=to_colour(lips),
        iris=to_colour(IRIS_COLOURS[iris_index] * values["iris_gain"]),
        cloth=to_colour(rng.uniform(20, 235, 3)),
        yaw=values["yaw"],
    )
