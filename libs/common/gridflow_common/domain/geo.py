"""Plane geometry for grid shapes: WKT polygons, point-in-polygon, distances.

Coordinates are WGS84 longitude/latitude, as cities export them from GIS tools. Grids are a few
hundred metres across, so treating lon/lat as a flat plane inside one polygon is accurate enough
for deciding which grid a report falls in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

Point = tuple[float, float]  # (lon, lat)
Ring = tuple[Point, ...]

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius


@dataclass(frozen=True)
class BoundingBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def contains(self, lon: float, lat: float) -> bool:
        # Closed on every side: it only rules points out, the exact rule lives in Polygon.contains.
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat


@dataclass(frozen=True, repr=False)
class Polygon:
    """One or more parts (a MULTIPOLYGON has several); each part is its shell followed by holes.

    Edge rule: a point on a boundary belongs to the shape on its east side of a vertical edge
    and its north side of a horizontal edge (half-open, like a pixel grid). Two shapes that tile
    the plane therefore never both claim, nor both drop, a point on their shared edge, so a
    report on a grid border lands in exactly one grid.
    """

    parts: tuple[tuple[Ring, ...], ...]
    bbox: BoundingBox

    def contains(self, lon: float, lat: float) -> bool:
        if not self.bbox.contains(lon, lat):
            return False
        return any(_part_contains(part, lon, lat) for part in self.parts)

    def __repr__(self) -> str:
        # Full coordinate lists would drown any Area repr in logs and test failures.
        b = self.bbox
        return (
            f"Polygon(parts={len(self.parts)}, "
            f"bbox=({b.min_lon}, {b.min_lat}, {b.max_lon}, {b.max_lat}))"
        )


def _part_contains(rings: tuple[Ring, ...], lon: float, lat: float) -> bool:
    # Even-odd over shell and holes together: a hole's crossings cancel the shell's.
    inside = False
    for ring in rings:
        for i in range(len(ring) - 1):
            a, b = ring[i], ring[i + 1]
            if (a[1] > lat) == (b[1] > lat):
                continue
            # Orient every edge bottom-up so two polygons sharing an edge, which walk it in
            # opposite directions, compute the same crossing bit-for-bit.
            if a[1] > b[1]:
                a, b = b, a
            x_cross = a[0] + (lat - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if lon < x_cross:
                inside = not inside
    return inside


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    # min() guards asin against rounding just above 1 for antipodal points.
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


_TOKEN = re.compile(r"\s*(?:([A-Za-z]+)|(\()|(\))|(,)|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))")


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[str] = []
        pos = 0
        stripped = text.rstrip()
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            if m is None or m.end() == pos:
                raise ValueError(
                    f"invalid WKT: unexpected character {stripped[pos:].lstrip()[:1]!r} "
                    f"at position {pos + 1}"
                )
            self.items.append(next(g for g in m.groups() if g is not None))
            pos = m.end()
        self.pos = 0

    def peek(self) -> str | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise ValueError(
                "invalid WKT: text ends too early"
                + (f", expected {expected!r}" if expected else "")
            )
        if expected is not None and tok != expected:
            raise ValueError(f"invalid WKT: expected {expected!r} but found {tok!r}")
        self.pos += 1
        return tok


def _number(tokens: _Tokens) -> float:
    tok = tokens.take()
    try:
        value = float(tok)
    except ValueError:
        raise ValueError(f"invalid WKT: expected a number but found {tok!r}") from None
    return value


def _ring(tokens: _Tokens) -> Ring:
    tokens.take("(")
    points: list[Point] = []
    while True:
        lon, lat = _number(tokens), _number(tokens)
        if tokens.peek() not in (",", ")"):
            raise ValueError(
                "invalid WKT: each point must be exactly 'longitude latitude' "
                f"(found {tokens.peek()!r} after {lon} {lat})"
            )
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(
                f"invalid WKT: point ({lon} {lat}) is not a longitude/latitude pair; "
                "WKT puts longitude first"
            )
        points.append((lon, lat))
        if tokens.take() == ")":
            break
    if len(points) < 4:
        raise ValueError(f"invalid WKT: a ring needs at least 4 points, found {len(points)}")
    if points[0] != points[-1]:
        raise ValueError(
            f"invalid WKT: ring is not closed (starts at {points[0][0]} {points[0][1]}, "
            f"ends at {points[-1][0]} {points[-1][1]})"
        )
    return tuple(points)


def _polygon_body(tokens: _Tokens) -> tuple[Ring, ...]:
    tokens.take("(")
    rings = [_ring(tokens)]
    while tokens.peek() == ",":
        tokens.take(",")
        rings.append(_ring(tokens))
    tokens.take(")")
    return tuple(rings)


def parse_wkt_polygon(text: str) -> Polygon:
    """Parse ``POLYGON((lon lat, ...), (hole ...))`` or ``MULTIPOLYGON(((...)), ((...)))``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("invalid WKT: empty")
    tokens = _Tokens(text)
    kind = tokens.take().upper()
    if kind == "POLYGON":
        parts: tuple[tuple[tuple[tuple[float, float], ...], ...], ...] = (_polygon_body(tokens),)
    elif kind == "MULTIPOLYGON":
        tokens.take("(")
        bodies = [_polygon_body(tokens)]
        while tokens.peek() == ",":
            tokens.take(",")
            bodies.append(_polygon_body(tokens))
        tokens.take(")")
        parts = tuple(bodies)
    elif kind == "(" or kind[:1].isdigit() or kind[:1] in "+-.":
        raise ValueError("invalid WKT: must start with POLYGON or MULTIPOLYGON")
    else:
        raise ValueError(f"invalid WKT: expected POLYGON or MULTIPOLYGON, found {kind}")
    if tokens.peek() is not None:
        raise ValueError(f"invalid WKT: unexpected {tokens.peek()!r} after the closing ')'")
    lons = [p[0] for part in parts for p in part[0]]
    lats = [p[1] for part in parts for p in part[0]]
    # Holes lie inside their shell, so shells alone bound the shape.
    bbox = BoundingBox(min(lons), min(lats), max(lons), max(lats))
    if bbox.min_lon == bbox.max_lon or bbox.min_lat == bbox.max_lat:
        raise ValueError("invalid WKT: polygon has no area")
    return Polygon(parts=parts, bbox=bbox)
