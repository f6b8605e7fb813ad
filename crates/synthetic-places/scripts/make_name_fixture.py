#!/usr/bin/env python3
"""Writes tests/fixtures/names.json: UTM file names formatted the way gmberton's
VPR-datasets-downloader (util.py: format_coord / get_dst_image_name) formats them, for a few
seeded random captures. Independent re-implementation in Python of the documented behaviour:
str(abs(float)) split at '.', integer part zero-padded to `left` (the sign counts), decimals
truncated to `right`; tile %02d, heading and pitch int(float(x)) %03d, roll and height empty.

Run: /usr/bin/python3 scripts/make_name_fixture.py
"""
import json
import os
import random


def format_coord(num, left=2, right=5):
    sign = "-" if float(num) < 0 else ""
    num = str(abs(float(num))) + "."
    integer, decimal = num.split(".")[:2]
    left -= len(sign)
    return f"{sign}{int(integer):0{left}d}.{decimal[:right]:<0{right}}"


def dst_name(e, n, zone, letter, lat, lon, pano, tile, heading, pitch, timestamp, note, ext=".jpg"):
    return (f"@{format_coord(e, 7, 2)}@{format_coord(n, 7, 2)}@{zone:02d}@{letter}"
            f"@{format_coord(lat, 3, 5)}@{format_coord(lon, 4, 5)}"
            f"@{pano}@{int(float(tile)):02d}@{int(float(heading)):03d}@{int(float(pitch)):03d}@@"
            f"@{timestamp}@{note}@{ext}")


def main():
    rng = random.Random(7)
    cases = []
    for i in range(40):
        e = round(rng.uniform(380000, 390000) * 100) / 100
        n = round(rng.uniform(3950000, 3960000) * 100) / 100
        lat = rng.uniform(35.0, 36.0)
        lon = rng.uniform(139.0, 140.0) * (1 if i % 7 else -1)
        heading = rng.uniform(0, 360)
        pitch = rng.uniform(-9, 9)
        tile = rng.randrange(0, 12)
        pano = f"p{i:05d}db{tile:03d}"
        ts = f"2024{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}_{rng.randrange(0, 24):02d}0000"
        note = ["day", "sunset", "night"][i % 3]
        cases.append({
            "east": e, "north": n, "zone": 54, "letter": "S", "lat": lat, "lon": lon,
            "pano_id": pano, "tile": tile, "heading": heading, "pitch": pitch,
            "timestamp": ts, "note": note,
            "expected": dst_name(e, n, 54, "S", lat, lon, pano, tile, heading, pitch, ts, note),
        })
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "names.json")
    with open(out, "w") as f:
        json.dump(cases, f, indent=1)
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
