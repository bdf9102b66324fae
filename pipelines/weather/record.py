#!/usr/bin/env python3
"""Writes the recorded API responses of the weather example.

    python3 pipelines/weather/record.py

Writes pipelines/data/weather/<city>.json: what Open-Meteo's forecast endpoint answers for
`hourly=temperature_2m&start_date=2024-06-01&end_date=2024-06-14&timezone=UTC`, in its exact
response format (metadata, `hourly_units`, and `hourly` as parallel arrays), with
deterministic synthetic temperatures (a daily cycle, a slow drift, noise, and a few missing
hours, which the API reports as null). The weather example's test serves these files from
a local server; `pipelines/weather/serve.py` does the same for a run by hand.
"""

import json
import math
import os
from datetime import datetime, timedelta

CITIES = [
    # name, latitude, longitude, elevation, mean °C, daily swing °C
    ("berlin", 52.52, 13.41, 38.0, 17.0, 9.0),
    ("paris", 48.85, 2.35, 43.0, 18.5, 8.0),
    ("madrid", 40.42, -3.70, 657.0, 24.0, 12.0),
]
START = datetime(2024, 6, 1)
HOURS = 14 * 24


def temperatures(seed, mean, swing):
    state = seed
    out = []
    for h in range(HOURS):
        state = (state * 1103515245 + 12345) % (1 << 31)
        noise = (state / (1 << 31) - 0.5) * 2.0
        drift = 3.0 * math.sin(2 * math.pi * h / (24 * 9))
        # Coldest around 04:00, warmest around 16:00.
        cycle = swing / 2 * math.sin(2 * math.pi * (h % 24 - 10) / 24)
        value = round(mean + drift + cycle + noise, 1)
        # A station that misses a few hours: the API sends null.
        out.append(None if state % 97 == 0 else value)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "data", "weather")
    os.makedirs(data, exist_ok=True)
    times = [(START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M") for h in range(HOURS)]
    for seed, (name, lat, lon, elevation, mean, swing) in enumerate(CITIES, start=7):
        body = {
            "latitude": lat,
            "longitude": lon,
            "generationtime_ms": 0.0519,
            "utc_offset_seconds": 0,
            "timezone": "UTC",
            "timezone_abbreviation": "UTC",
            "elevation": elevation,
            "hourly_units": {"time": "iso8601", "temperature_2m": "°C"},
            "hourly": {"time": times, "temperature_2m": temperatures(seed * 7919, mean, swing)},
        }
        with open(os.path.join(data, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(body, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")


if __name__ == "__main__":
    main()
