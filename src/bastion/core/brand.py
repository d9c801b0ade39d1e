"""How Bastion presents itself on its pages and in its emails: a name, a colour, a logo and a
support address, and the colours derived from the brand colour so that text stays readable."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The image files a logo may be, and the media type each is served as.
LOGO_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
MAX_LOGO_BYTES = 256 * 1024
LOGO_PATH = "/assets/brand-logo"
# WCAG 2.x: the contrast normal text needs against its background (level AA).
READABLE = 4.5
LIGHT_BACKGROUND = (255, 255, 255)
DARK_BACKGROUND = (24, 26, 32)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
NEAR_BLACK = (17, 19, 24)
_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")

Rgb = tuple[int, int, int]


def parse_color(value: str) -> Rgb:
    """``#rgb`` or ``#rrggbb`` as red, green and blue; ValueError for anything else."""
    match = _HEX.fullmatch(value.strip())
    if match is None:
        raise ValueError("must be a hex colour such as #2952cc")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def hex_of(color: Rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def relative_luminance(color: Rgb) -> float:
    """WCAG's relative luminance of an sRGB colour."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: Rgb, b: Rgb) -> float:
    """WCAG's contrast ratio of two colours, from 1 to 21."""
    lighter, darker = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _mix(color: Rgb, toward: Rgb, share: float) -> Rgb:
    r, g, b = (round(c + (t - c) * share) for c, t in zip(color, toward, strict=True))
    return (r, g, b)


def readable_on(color: Rgb, background: Rgb) -> Rgb:
    """``color``, darkened or lightened just enough to be readable as text on ``background``."""
    toward = NEAR_BLACK if relative_luminance(background) > 0.5 else WHITE
    for step in range(21):
        candidate = _mix(color, toward, step / 20)
        if contrast(candidate, background) >= READABLE:
            return candidate
    return toward


@dataclass(frozen=True, slots=True)
class Palette:
    """The brand colour and the colours that go with it, as CSS hex strings."""

    accent: str  # buttons and accents
    on_accent: str  # text on an accent background
    accent_text: str  # links and focus rings on the light background
    accent_text_dark: str  # the same on the dark background

    @classmethod
    def of(cls, color: str) -> Palette:
        rgb = parse_color(color)
        # Any colour reaches 4.58:1 against white or black, so one of them is readable on it.
        on_accent = max((WHITE, BLACK), key=lambda text: contrast(text, rgb))
        return cls(
            accent=hex_of(rgb),
            on_accent=hex_of(on_accent),
            accent_text=hex_of(readable_on(rgb, LIGHT_BACKGROUND)),
            accent_text_dark=hex_of(readable_on(rgb, DARK_BACKGROUND)),
        )


@dataclass(frozen=True, slots=True)
class Brand:
    """What the pages and the emails show of the organisation running Bastion."""

    name: str
    color: str
    public_url: str
    has_logo: bool = False
    support_email: str | None = None

    @property
    def palette(self) -> Palette:
        return Palette.of(self.color)

    @property
    def logo_url(self) -> str | None:
        """The logo's absolute URL (emails need one), when there is a logo."""
        return f"{self.public_url}{LOGO_PATH}" if self.has_logo else None
