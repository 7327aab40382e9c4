"""Deterministic images from a prompt: small real work for the workers, no ML stack needed.

The same prompt, size and palette always give the same pixels, so tests and
the demo can check results by hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Sequence

Color = tuple[int, int, int]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PALETTE_MODEL = "sample-app/palette-v1.json"


def prompt_digest(prompt: str) -> bytes:
    return hashlib.sha256(prompt.encode("utf-8")).digest()


def png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """An 8-bit RGB PNG from ``height`` rows of ``3 * width`` bytes."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _mix(a: Color, b: Color, t: float) -> Color:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def render(prompt: str, width: int, height: int, palette: Sequence[Color] | None = None) -> bytes:
    """A diagonal gradient between two colours picked by the prompt, with prompt-derived stripes."""
    digest = prompt_digest(prompt)
    if palette:
        start, end = palette[digest[0] % len(palette)], palette[digest[1] % len(palette)]
    else:
        start, end = (digest[0], digest[1], digest[2]), (digest[3], digest[4], digest[5])
    stripe = 4 + digest[6] % 28
    span = max(width + height - 2, 1)
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            r, g, b = _mix(start, end, (x + y) / span)
            if ((x + digest[7]) // stripe) % 2:
                r, g, b = r // 2 + 64, g // 2 + 64, b // 2 + 64
            row += bytes((r, g, b))
        rows.append(bytes(row))
    return png(width, height, rows)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG's IHDR."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def load_palette(hf_home: Path) -> tuple[list[Color], bool]:
    """The palette "model" from the shared model cache, fetched (built) once.

    Stands in for a model download into ``HF_HOME``: the first worker to need
    it writes it to the cache volume every worker (and ComfyUI) shares; later
    calls, in any container, read it. Returns (palette, downloaded now).
    """
    path = hf_home / PALETTE_MODEL
    if path.is_file():
        return [tuple(color) for color in json.loads(path.read_text())["colors"]], False
    seed = hashlib.sha256(b"aistack sample palette v1").digest()
    colors = [(seed[i], seed[i + 1], seed[i + 2]) for i in range(0, 30, 3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"name": "palette-v1", "colors": colors}))
    os.replace(temporary, path)  # atomic: concurrent workers never read half a file
    return colors, True
