#!/usr/bin/env python3
"""Independent oracle for the weather example's outputs.

    python3 pipelines/weather/expected.py

Reads the recorded responses in pipelines/data/weather/ and computes in plain Python what
the example's sinks must hold, from the rules as described (not from the SQL):

- daily: per city and UTC day, the lowest, highest and mean temperature of the hours that
  have one, and how many hours that is;
- rolling: per city and day, the day's mean and the mean of the daily means over the seven
  calendar days ending that day (fewer at the start of the data).

Writes pipelines/expected/weather/daily.csv and rolling.csv: a header row, rows sorted by
city then day, floats with 6 decimals (the test compares them with a tolerance).
"""

import csv
import json
import os
from collections import defaultdict
from datetime import date, timedelta

NAMES = {"berlin": "Berlin", "paris": "Paris", "madrid": "Madrid"}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "data", "weather")
    out = os.path.join(here, "..", "expected", "weather")
    os.makedirs(out, exist_ok=True)
    days = defaultdict(list)
    for file, city in NAMES.items():
        with open(os.path.join(data, f"{file}.json"), encoding="utf-8") as f:
            hourly = json.load(f)["hourly"]
        for t, v in zip(hourly["time"], hourly["temperature_2m"]):
            if v is not None:
                days[(city, date.fromisoformat(t[:10]))].append(v)
    daily = []
    for (city, day), values in sorted(days.items()):
        daily.append((city, day, min(values), max(values), sum(values) / len(values), len(values)))
    means = {(c, d): avg for c, d, _, _, avg, _ in daily}
    rolling = []
    for city, day, _, _, avg, _ in daily:
        window = [means[(city, day - timedelta(days=k))] for k in range(7) if (city, day - timedelta(days=k)) in means]
        rolling.append((city, day, avg, sum(window) / len(window)))
    with open(os.path.join(out, "daily.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["city", "day", "min_c", "max_c", "avg_c", "hours"])
        for c, d, lo, hi, avg, n in daily:
            w.writerow([c, d.isoformat(), f"{lo:.6f}", f"{hi:.6f}", f"{avg:.6f}", n])
    with open(os.path.join(out, "rolling.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["city", "day", "avg_c", "avg_7d"])
        for c, d, avg, r7 in rolling:
            w.writerow([c, d.isoformat(), f"{avg:.6f}", f"{r7:.6f}"])


if __name__ == "__main__":
    main()
