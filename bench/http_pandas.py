"""The script the HTTP benchmark compares etl with: what users write today to load a paginated
JSON API, with `requests` and `pandas.json_normalize`.

    python3 bench/http_pandas.py http://127.0.0.1:8000/items out.parquet

Needs `requests`, `pandas` and `pyarrow` (bench/http_bench.py installs them into bench/.venv).
"""

import sys

import pandas as pd
import requests


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    session = requests.Session()
    frames = []
    page = 1
    while True:
        r = session.get(url, params={"page": page, "per_page": 1000}, timeout=30)
        r.raise_for_status()
        records = r.json()["data"]
        if not records:
            break
        frames.append(pd.json_normalize(records, sep="_"))
        page += 1
    df = pd.concat(frames, ignore_index=True)
    df.to_parquet(out, index=False)
    print(f"{len(df)} rows from {page - 1} pages")


if __name__ == "__main__":
    main()
