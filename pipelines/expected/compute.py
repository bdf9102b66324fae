#!/usr/bin/env python3
"""Independent oracle for the example pipelines' outputs.

    python3 pipelines/expected/compute.py

Reads the sample inputs under pipelines/data/ and computes, in plain Python (standard
library only, no SQL), what every sink of the example pipelines must contain. Writes
pipelines/expected/<pipeline>/<sink>.csv.

The business rules are re-implemented here from their description, not translated from
the pipelines' SQL, so that a mistake in one is not copied into the other.

Output format, shared by every file:
- a header row with the sink's columns, in the transform's order (for a sink with
  partition_by, the partition columns are included, last);
- rows sorted by all columns, left to right, with typed comparisons (numbers as numbers,
  timestamps in time order, false before true) and NULLs last, like ORDER BY 1, 2, ...;
- floats rounded to 2 decimals, decimals (money) with their scale of 2, timestamps as
  YYYY-MM-DD HH:MM:SS, dates as YYYY-MM-DD, booleans as true/false, NULL as an empty field.
"""

import csv
import glob
import hashlib
import json
import os
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")

CENT = Decimal("0.01")


# --------------------------------------------------------------------------- reading
def parse_value(text, typ):
    """One CSV field under a declared schema type. An empty field is NULL."""
    if text == "" or text is None:
        return None
    if typ in ("int", "bigint"):
        return int(text)
    if typ == "decimal":
        return Decimal(text).quantize(CENT)
    if typ == "timestamp":
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    if typ == "date":
        return date.fromisoformat(text)
    if typ == "string":
        return text
    raise ValueError(typ)


def read_csv(paths, schema):
    """Rows (dicts) of one or more CSV files with a header, typed by `schema`."""
    if isinstance(paths, str):
        paths = [paths]
    rows = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            assert header == list(schema), (path, header)
            for rec in reader:
                rows.append({c: parse_value(v, schema[c]) for c, v in zip(header, rec)})
    return rows


# --------------------------------------------------------------------------- writing
class Float2:
    """A float in an output: compared by value, printed with 2 decimals.

    Refuses to print a value that sits exactly on a 2-decimal rounding tie (0.125),
    where half-up and half-even rounding would disagree: change the data instead."""

    def __init__(self, value):
        self.value = value

    def __lt__(self, other):
        return self.value < other.value

    def __eq__(self, other):
        return self.value == other.value

    def text(self):
        d = Decimal(str(self.value))
        rounded = d.quantize(CENT, rounding=ROUND_HALF_UP)
        tie = (d * 1000) % 10 == 5 and (d * 1000) == (d * 1000).to_integral_value()
        assert not tie, f"float {d} sits on a 2-decimal rounding tie; change the sample data"
        return str(rounded)


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return str(v.quantize(CENT))
    if isinstance(v, Float2):
        return v.text()
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def sort_key(row):
    # NULLs last in every column, like ORDER BY ... ASC in DataFusion and Postgres
    return tuple((1, 0) if v is None else (0, v) for v in row)


def write_expected(pipeline, sink, columns, rows):
    tuples = [tuple(r[c] for c in columns) for r in rows]
    tuples.sort(key=sort_key)
    path = os.path.join(HERE, pipeline, sink + ".csv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for t in tuples:
            w.writerow([fmt(v) for v in t])
    print(f"{pipeline}/{sink}.csv: {len(tuples)} rows")
    return len(tuples)


# --------------------------------------------------------------------------- helpers
def initcap(s):
    """Upper-case the first letter of every word, lower-case the rest; a word is a run of
    letters and digits (anything else separates words)."""
    out, start = [], True
    for ch in s:
        if ch.isalnum():
            out.append(ch.upper() if start else ch.lower())
            start = False
        else:
            out.append(ch)
            start = True
    return "".join(out)


def blank_to_none(s):
    return None if s is None or s == "" else s


def sha256_hex(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- retail_star
def retail_star():
    d = os.path.join(DATA, "retail_star")
    sales_raw = read_csv(sorted(glob.glob(os.path.join(d, "sales", "*.csv"))),
                         {"rowid": "bigint", "ts": "timestamp", "customer_id": "int",
                          "product_id": "int", "quantity": "int", "price": "decimal"})
    products = read_csv(os.path.join(d, "products.csv"),
                        {"product_id": "int", "name": "string", "category": "string"})
    customers = read_csv(os.path.join(d, "customers.csv"),
                         {"customer_id": "int", "name": "string", "country": "string"})

    # overlapping exports: one row per rowid (the repeats are exact copies)
    sales = {}
    for s in sales_raw:
        if s["rowid"] in sales:
            assert sales[s["rowid"]] == s, "duplicate rowid with different content"
        else:
            sales[s["rowid"]] = s
    sales = list(sales.values())

    def norm_category(c):
        c = blank_to_none(c.strip()) if c is not None else None
        return initcap(c) if c is not None else "Uncategorized"

    def norm_country(c):
        c = blank_to_none(c.strip()) if c is not None else None
        return c.upper() if c is not None else "XX"

    category_of = {p["product_id"]: norm_category(p["category"]) for p in products}
    country_of = {c["customer_id"]: norm_country(c["country"]) for c in customers}

    categories = sorted(set(category_of.values()) | {"Uncategorized"})
    category_key = {c: i + 1 for i, c in enumerate(categories)}
    countries = sorted(set(country_of.values()) | {"XX"})
    country_key = {c: i + 1 for i, c in enumerate(countries)}

    def date_key(day):
        return day.year * 10000 + day.month * 100 + day.day

    days = sorted({s["ts"].date() for s in sales})
    dim_date = []
    for day in days:
        dow = day.isoweekday() % 7          # 0 = Sunday ... 6 = Saturday
        dim_date.append({"date_key": date_key(day), "date": day, "year": day.year,
                         "quarter": (day.month - 1) // 3 + 1, "month": day.month,
                         "day_of_week": dow, "is_weekend": dow in (0, 6)})

    fact = []
    for s in sales:
        cat = category_of.get(s["product_id"], "Uncategorized")
        cty = country_of.get(s["customer_id"], "XX")
        fact.append({"rowid": s["rowid"], "date_key": date_key(s["ts"].date()),
                     "category_key": category_key[cat], "country_key": country_key[cty],
                     "customer_id": s["customer_id"], "product_id": s["product_id"],
                     "quantity": s["quantity"], "price": s["price"],
                     "amount": s["price"] * s["quantity"]})
    assert all(f["amount"] >= 0 for f in fact)

    counts = {}
    counts["dim_date"] = write_expected(
        "retail_star", "dim_date_parquet",
        ["date_key", "date", "year", "quarter", "month", "day_of_week", "is_weekend"], dim_date)
    counts["dim_category"] = write_expected(
        "retail_star", "dim_category_parquet", ["category_key", "category"],
        [{"category_key": k, "category": c} for c, k in category_key.items()])
    counts["dim_country"] = write_expected(
        "retail_star", "dim_country_parquet", ["country_key", "country_code"],
        [{"country_key": k, "country_code": c} for c, k in country_key.items()])
    counts["fact_sales"] = write_expected(
        "retail_star", "fact_sales_parquet",
        ["rowid", "date_key", "category_key", "country_key", "customer_id", "product_id",
         "quantity", "price", "amount"], fact)
    return counts


# --------------------------------------------------------------------------- customer_anonymize
def customer_anonymize():
    d = os.path.join(DATA, "customer_anonymize")
    customers = []
    with open(os.path.join(d, "customers.json"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                customers.append({
                    "customer_id": rec["customer_id"],
                    "name": rec.get("name"),
                    "email": rec.get("email"),
                    "phone": rec.get("phone"),          # a missing key is NULL
                    "country": rec.get("country"),
                    "signup_date": date.fromisoformat(rec["signup_date"]),
                })
    transactions = read_csv(os.path.join(d, "transactions.csv"),
                            {"tx_id": "bigint", "customer_id": "bigint", "ts": "timestamp",
                             "amount": "decimal"})
    requests = read_csv(os.path.join(d, "erasure_requests.csv"),
                        {"customer_id": "bigint", "requested_at": "timestamp"})
    erased_ids = {r["customer_id"] for r in requests}

    def email_hash(e):
        if e is None:
            return None
        e = e.strip().lower()
        return sha256_hex(e) if e else None

    def phone_hash(p):
        if p is None:
            return None
        digits = "".join(ch for ch in p if "0" <= ch <= "9")
        return sha256_hex(digits) if digits else None

    anon = []
    for c in customers:
        erased = c["customer_id"] in erased_ids
        anon.append({
            "customer_id": c["customer_id"],
            "name": None if erased else c["name"],
            "email": None if erased else email_hash(c["email"]),
            "phone": None if erased else phone_hash(c["phone"]),
            "country": c["country"],
            "signup_date": c["signup_date"],
            "erased": erased,
        })

    # exact duplicate lines collapse; everything else is kept
    seen, tx_out = set(), []
    for t in transactions:
        key = (t["tx_id"], t["customer_id"], t["ts"], t["amount"])
        if key not in seen:
            seen.add(key)
            tx_out.append(t)
    assert len({t["tx_id"] for t in tx_out}) == len(tx_out)

    return {
        "customers_anon": write_expected(
            "customer_anonymize", "customers_anon_parquet",
            ["customer_id", "name", "email", "phone", "country", "signup_date", "erased"], anon),
        "transactions_out": write_expected(
            "customer_anonymize", "transactions_out",
            ["tx_id", "customer_id", "ts", "amount"], tx_out),
    }


# --------------------------------------------------------------------------- web_logs
MONTHS = {m: i + 1 for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"])}


def parse_log_line(line):
    """Apache combined format, taken apart with string operations (no regex)."""
    host, rest = line.split(" ", 1)
    open_b, close_b = rest.index("["), rest.index("]")
    stamp = rest[open_b + 1:close_b]                      # 14/May/2024:08:01:44 +0000
    after = rest[close_b + 1:]
    q1 = after.index('"')
    q2 = after.index('"', q1 + 1)
    method, path = after[q1 + 1:q2].split(" ")[:2]
    status_text, bytes_text = after[q2 + 1:].split()[:2]

    when, offset = stamp.split(" ")
    day, mon, rest_t = when.split("/")
    year, hh, mm, ss = rest_t.split(":")
    sign = 1 if offset[0] == "+" else -1
    tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    ts = datetime(int(year), MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=tz)
    ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return {"ip": host, "ts": ts, "method": method, "path": path,
            "status": int(status_text),
            "bytes": None if bytes_text == "-" else int(bytes_text)}


def round_half_up(frac, places):
    q = Decimal(1).scaleb(-places)
    return (Decimal(frac.numerator) / Decimal(frac.denominator)).quantize(q, rounding=ROUND_HALF_UP)


def web_logs():
    path = os.path.join(DATA, "web_logs", "access.log")
    with open(path, encoding="utf-8") as f:
        parsed = [parse_log_line(l.rstrip("\n")) for l in f if l.strip()]

    hours = {}
    for p in parsed:
        h = p["ts"].replace(minute=0, second=0)
        hours.setdefault(h, []).append(p)
    out = []
    for h, reqs in hours.items():
        client = sum(1 for r in reqs if 400 <= r["status"] <= 499)
        server = sum(1 for r in reqs if r["status"] >= 500)
        exact = Fraction(client + server, len(reqs))
        # the pipeline rounds to 4 places; make sure that is not a tie either
        assert (exact * 10**4).denominator != 2, f"error rate {exact} is a 4-place tie"
        rate4 = round_half_up(exact, 4)
        sizes = [r["bytes"] for r in reqs if r["bytes"] is not None]
        out.append({"hour": h, "hits": len(reqs), "client_errors": client,
                    "server_errors": server, "error_rate": Float2(float(rate4)),
                    "bytes_total": sum(sizes) if sizes else None})
    return {"hourly": write_expected(
        "web_logs", "hourly_parquet",
        ["hour", "hits", "client_errors", "server_errors", "error_rate", "bytes_total"], out)}


# --------------------------------------------------------------------------- card_fraud
def card_fraud():
    tx = read_csv(os.path.join(DATA, "card_fraud", "transactions.csv"),
                  {"tx_id": "bigint", "card_id": "string", "ts": "timestamp",
                   "amount": "decimal", "merchant": "string", "country": "string"})

    per_minute = {}
    for t in tx:
        w = t["ts"].replace(second=0, microsecond=0)
        agg = per_minute.setdefault((t["card_id"], w), {"tx_count": 0, "amount_sum": Decimal(0)})
        agg["tx_count"] += 1
        agg["amount_sum"] += t["amount"]

    by_card = {}
    for t in tx:
        by_card.setdefault(t["card_id"], []).append(t)
    ten = timedelta(minutes=10)
    flagged = []
    for card, items in by_card.items():
        for t in items:
            window = [u for u in items if t["ts"] - ten <= u["ts"] <= t["ts"]]
            # no sample row sits exactly on the window's edge: both the inclusive and an
            # exclusive reading of "10 minutes preceding" give the same answer here
            assert not any(u["ts"] == t["ts"] - ten for u in items), "edge case in sample data"
            s = sum((u["amount"] for u in window), Decimal(0))
            n = len(window)
            row = dict(t)
            row.update({"sum_10m": s, "count_10m": n, "suspicious": s > 1000 or n >= 5,
                        "tx_date": t["ts"].date()})
            flagged.append(row)

    suspicious_cards = sorted({f["card_id"] for f in flagged if f["suspicious"]})
    print("  card_fraud: suspicious cards:", ", ".join(suspicious_cards),
          f"({sum(f['suspicious'] for f in flagged)} transactions);",
          "dates:", ", ".join(sorted({f['tx_date'].isoformat() for f in flagged})))

    return {
        "per_minute": write_expected(
            "card_fraud", "per_minute_parquet", ["card_id", "window_start", "tx_count", "amount_sum"],
            [{"card_id": c, "window_start": w, **a} for (c, w), a in per_minute.items()]),
        "flagged": write_expected(
            "card_fraud", "flagged_parquet",
            ["tx_id", "card_id", "ts", "amount", "merchant", "country", "sum_10m",
             "count_10m", "suspicious", "tx_date"], flagged),
    }


if __name__ == "__main__":
    retail_star()
    customer_anonymize()
    web_logs()
    card_fraud()
