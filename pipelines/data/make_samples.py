#!/usr/bin/env python3
"""Regenerate the sample inputs of the example pipelines.

    python3 pipelines/data/make_samples.py

Deterministic: every data set comes from its own seeded random.Random, so running
this again rewrites byte-identical files. Standard library only.

The data is small (20-300 rows a file) but shaped like the real thing, with the
edge cases a pipeline has to cope with: exact duplicate rows, NULL and empty values,
mixed-case codes, stray whitespace, quoted fields with commas, non-ASCII names,
references to rows that do not exist. Every row parses under the schema declared in
the pipeline file: the examples are meant to run clean.

After changing anything here, rerun pipelines/expected/compute.py.
"""

import json
import os
import random
from datetime import date, datetime, timedelta
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))


def write(path, text):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def csv_line(values):
    out = []
    for v in values:
        if v is None:
            out.append("")  # empty unquoted field: NULL
        else:
            s = str(v)
            if any(c in s for c in ',"\n'):
                s = '"' + s.replace('"', '""') + '"'
            out.append(s)
    return ",".join(out) + "\n"


def csv_text(header, rows):
    return csv_line(header) + "".join(csv_line(r) for r in rows)


def ts(d):
    return d.strftime("%Y-%m-%d %H:%M:%S")


def money(x):
    return str(Decimal(x).quantize(Decimal("0.01")))


FIRST = ["Anna", "Lukas", "Marie", "Jonas", "Léa", "Hugo", "Sofia", "Mateo", "Eva",
         "Jürgen", "Zofia", "Piotr", "Giulia", "Marco", "Sanne", "Daan", "Inés",
         "Pablo", "Chloé", "Noah", "Emma", "Björn", "Åsa", "Oskar", "Nina", "Tomás",
         "Clara", "Felix", "Ida", "Luca"]
LAST = ["Schmidt", "Müller", "Dubois", "Martin", "Kowalski", "Nowak", "Rossi",
        "Bianchi", "de Vries", "Jansen", "García", "López", "Bernard", "Weber",
        "Lindqvist", "Nilsson", "O'Brien", "Fischer", "Moreau", "Costa"]


# --------------------------------------------------------------------------- retail_star
def retail_star():
    rnd = random.Random(1301)
    # product_id, name, category (as the shop system spells it), list price
    products = [
        (101, "USB-C Cable, 2m", "Electronics", "9.99"),
        (102, "Wireless Mouse", "Electronics", "24.90"),
        (103, "Noise Cancelling Headphones", "electronics", "149.00"),  # lower case
        (104, "27\" Monitor", "Electronics", "229.00"),                  # quote in name
        (105, "Paperback: The Long Field", "Books", "12.50"),
        (106, "Cookbook \u2013 Simple Pasta", " Books", "18.00"),       # leading space
        (107, "Children's Atlas", "Books", "15.95"),
        (108, "Garden Hose 25m", "Home & Garden", "34.99"),
        (109, "Terracotta Pot, large", "home & garden", "21.00"),
        (110, "LED Desk Lamp", "Home & Garden", "39.90"),
        (111, "Wooden Train Set", "Toys", "44.00"),
        (112, "Puzzle 1000 pcs", "Toys", "13.49"),
        (113, "Plush Bear", "TOYS", "17.99"),                           # upper case
        (114, "Espresso Beans 1kg", "Grocery", "16.80"),
        (115, "Olive Oil 0.75l", "Grocery", "11.25"),
        (116, "Dark Chocolate 6-pack", "Grocery", "8.70"),
        (117, "Gift Card 25 EUR", None, "25.00"),                       # no category yet
        (118, "Phone Case", "Electronics", "14.99"),
        (119, "Notebook A5", "Books", "4.20"),
        (120, "Bird Feeder", "Home & Garden", "19.50"),
    ]
    write("retail_star/products.csv",
          csv_text(["product_id", "name", "category"], [p[:3] for p in products]))

    countries = ["DE", "DE", "DE", "FR", "FR", "NL", "ES", "IT", "PL", "AT"]
    customers = []
    for i in range(40):
        cid = 1001 + i
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}"
        c = countries[rnd.randrange(len(countries))]
        if i in (5, 17):
            c = c.lower()          # "de": typed by hand in the CRM
        elif i == 23:
            c = c.title()          # "Fr"
        elif i == 31:
            c = None               # unknown country
        customers.append((cid, name, c))
    write("retail_star/customers.csv",
          csv_text(["customer_id", "name", "country"], customers))

    # Two weekly export files, 2024-03-25 (Mon) .. 2024-04-07 (Sun): crosses Q1 -> Q2.
    # The shop is closed on Easter Sunday, 2024-03-31: no sales that day.
    days = [date(2024, 3, 25) + timedelta(days=d) for d in range(14)]
    rows = []
    rowid = 500000
    for d in days:
        if d == date(2024, 3, 31):
            continue
        n = rnd.randint(11, 19) if d.weekday() >= 5 else rnd.randint(13, 18)
        times = sorted(rnd.randint(8 * 3600, 21 * 3600) for _ in range(n))
        for t in times:
            rowid += 1
            p = products[rnd.randrange(len(products))]
            price = Decimal(p[3])
            if rnd.random() < 0.12:   # 10% promotion
                price = (price * Decimal("0.9")).quantize(Decimal("0.01"))
            qty = rnd.choice([1, 1, 1, 1, 2, 2, 3, 4, 6])
            cust = customers[rnd.randrange(len(customers))][0]
            at = datetime(d.year, d.month, d.day) + timedelta(seconds=t)
            rows.append([rowid, ts(at), cust, p[0], qty, money(price)])
    # a sale from a customer that is not (yet) in the customer export
    rows[57][2] = 9999
    w13 = [r for r in rows if r[1] < "2024-04-01"]
    w14 = [r for r in rows if r[1] >= "2024-04-01"]
    # the second export overlaps the first by two rows, and repeats one of its own rows
    w14 = w13[-2:] + w14
    w14.insert(40, list(w14[39]))
    header = ["rowid", "ts", "customer_id", "product_id", "quantity", "price"]
    write("retail_star/sales/2024-w13.csv", csv_text(header, w13))
    write("retail_star/sales/2024-w14.csv", csv_text(header, w14))


# --------------------------------------------------------------------------- customer_anonymize
def customer_anonymize():
    rnd = random.Random(2402)
    countries = ["DE", "FR", "NL", "ES", "IT", "SE", "PL"]
    prefixes = {"DE": "+49", "FR": "+33", "NL": "+31", "ES": "+34", "IT": "+39",
                "SE": "+46", "PL": "+48"}
    lines = []
    for i in range(100):
        cid = 1 + i
        first, last = FIRST[i % len(FIRST)], LAST[(i * 3 + i // len(FIRST)) % len(LAST)]
        country = countries[rnd.randrange(len(countries))]
        local = (first + "." + last).lower().replace(" ", "").replace("'", "")
        domain = rnd.choice(["example.com", "example.org", "mail.example.net"])
        email = f"{local}@{domain}"
        if i % 7 == 2:
            email = email.title()                 # Anna.Schmidt@Example.Com
        if i % 11 == 4:
            email = "  " + email + " "            # pasted with whitespace
        digits = "".join(str(rnd.randrange(10)) for _ in range(9))
        style = i % 4
        if style == 0:
            phone = f"{prefixes[country]} {digits[:3]} {digits[3:]}"
        elif style == 1:
            phone = f"{prefixes[country]} ({digits[:2]}) {digits[2:5]}-{digits[5:]}"
        elif style == 2:
            phone = f"{prefixes[country]}{digits}"
        else:
            phone = f"{prefixes[country]}-{digits[:3]}-{digits[3:6]}-{digits[6:]}"
        signup = date(2021, 1, 1) + timedelta(days=rnd.randrange(3 * 365))
        rec = {"customer_id": cid, "name": f"{first} {last}", "email": email,
               "phone": phone, "country": country, "signup_date": signup.isoformat()}
        if i in (6, 58):
            rec["phone"] = None                   # explicit null
        if i == 13:
            rec["phone"] = ""                     # empty string, not null
        if i in (19, 77):
            del rec["phone"]                      # field absent
        if i in (22, 41):
            rec["email"] = None                   # no email on file
        if i == 64:
            rec["email"] = "   "                  # only whitespace
        lines.append(json.dumps(rec, ensure_ascii=False))
    write("customer_anonymize/customers.json", "\n".join(lines) + "\n")

    tx = []
    start = datetime(2024, 4, 1)
    for k in range(240):
        at = start + timedelta(seconds=rnd.randrange(30 * 86400))
        cid = 1 + rnd.randrange(100)
        amount = Decimal(rnd.randrange(299, 25000)) / 100
        if k % 29 == 7:
            amount = -amount                      # refund
        tx.append([None, None if k in (33, 90, 171) else cid, ts(at), money(amount)])
    tx.sort(key=lambda r: r[2])
    for n, r in enumerate(tx):
        r[0] = 70001 + n
    # the export was re-sent partially: three exact duplicate lines
    for pos in (20, 101, 190):
        tx.insert(pos + 1, list(tx[pos]))
    write("customer_anonymize/transactions.csv",
          csv_text(["tx_id", "customer_id", "ts", "amount"], tx))

    # 16 customers asked to be forgotten; two of them asked twice, and two requests
    # name ids that are not (or no longer) in the customer file: nothing to erase there
    asked = sorted(rnd.sample(range(1, 101), 16))
    req = [[cid, start + timedelta(seconds=rnd.randrange(60 * 86400))] for cid in asked]
    req += [[asked[3], req[3][1] + timedelta(days=9, seconds=3671)],
            [asked[11], req[11][1] + timedelta(days=2, seconds=45)],
            [404, datetime(2024, 5, 21, 7, 45, 10)],
            [1234, datetime(2024, 4, 28, 19, 2, 33)]]
    req = [[cid, ts(when)] for cid, when in sorted(req, key=lambda r: r[1])]
    write("customer_anonymize/erasure_requests.csv",
          csv_text(["customer_id", "requested_at"], req))


# --------------------------------------------------------------------------- web_logs
def web_logs():
    rnd = random.Random(3503)
    ips = [f"203.0.113.{n}" for n in (4, 17, 23, 42, 56, 77, 81, 99, 120, 154)] + \
          [f"198.51.100.{n}" for n in (2, 9, 33, 64, 87, 101, 142, 200)] + \
          ["192.0.2.10", "192.0.2.44", "2001:db8::1f", "2001:db8:85a3::8a2e:370:7334"]
    agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "curl/8.5.0",
    ]
    pages = [("/", 7340), ("/index.html", 7340), ("/products", 15211),
             ("/products?id=12&ref=home", 9120), ("/products?id=31", 9544),
             ("/static/app.js", 48211), ("/static/style.css", 11803),
             ("/about", 4420), ("/cart", 6120)]
    start = datetime(2024, 5, 14, 8, 0, 0)
    secs = sorted(rnd.sample(range(6 * 3600), 204))
    out = []
    for n, s in enumerate(secs):
        at = start + timedelta(seconds=s)
        ip = ips[rnd.randrange(len(ips))]
        user = "-"
        method, proto = "GET", "HTTP/1.1"
        path, size = pages[rnd.randrange(len(pages))]
        size = str(size + rnd.randrange(-40, 40)) if "static" not in path else str(size)
        status = 200
        referer = rnd.choice(["-", "https://www.example.com/", "https://search.example.org/?q=shop"])
        agent = agents[rnd.randrange(len(agents))]
        r = rnd.random()
        if r < 0.10:
            status, size = 304, "-"                       # not modified: no body
        elif r < 0.15:
            method, path, status, size = "POST", "/api/cart", 201, str(rnd.randrange(80, 160))
        elif r < 0.18:
            method, status, size = "HEAD", 200, "-"
        elif r < 0.24:
            path, status, size = rnd.choice(["/wp-login.php", "/.env", "/favicon.ico", "/old-page"]), 404, "196"
        elif r < 0.26:
            path, status, size = "/admin", 403, "199"
        elif r < 0.28:
            method, path, status, size = "POST", "/login", 401, "58"
        if r > 0.5 and rnd.random() < 0.1:
            user = "alice"                                # authenticated user
        if r > 0.3 and rnd.random() < 0.05:
            proto = "HTTP/2.0"
        # a backend incident between 11:20 and 11:50: many 502/503
        if datetime(2024, 5, 14, 11, 20) <= at < datetime(2024, 5, 14, 11, 50) and rnd.random() < 0.6:
            status, size = rnd.choice([502, 503, 503]), rnd.choice(["-", "341"])
        elif rnd.random() < 0.015:
            status, size = 500, "531"
        stamp = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
        out.append(f'{ip} - {user} [{stamp}] "{method} {path} {proto}" {status} {size} '
                   f'"{referer}" "{agent}"\n')
    write("web_logs/access.log", "".join(out))


# --------------------------------------------------------------------------- card_fraud
def card_fraud():
    rnd = random.Random(4604)
    merchants = [("Rewe Markt", "DE"), ("Lidl", "DE"), ("DB Fernverkehr", "DE"),
                 ("AMAZON MKTPLACE", "LU"), ("Amazon Mktplace", "LU"), ("Shell 2231", "DE"),
                 ("Carrefour City", "FR"), ("SNCF", "FR"), ("Spotify", "SE"),
                 ("Albert Heijn", "NL"), ("Uber *Trip", "NL"), ("Zalando SE", "DE"),
                 ("Apotheke am Markt", "DE"), ("Late Night Kiosk", None), (None, "DE")]
    cards = [f"card-{n:04d}" for n in (1021, 1187, 1340, 1422, 1555, 1603, 1748,
                                       1812, 1907, 2044, 2119, 2230, 2381, 2456, 2599)]
    t0 = datetime(2024, 6, 30, 23, 0, 0)      # two hours around midnight
    span = 2 * 3600
    tx = []

    def at(h, m, s):
        d = date(2024, 6, 30) if h == 23 else date(2024, 7, 1)
        return datetime(d.year, d.month, d.day, h, m, s)

    # First and last charge of each planted burst (below). That card's everyday
    # purchases keep 11 minutes clear of it, so the burst alone decides whether the
    # rule fires (this matters for the card-1187 boundary case).
    quiet = {
        "card-1422": (at(23, 41, 5), at(23, 45, 7)),
        "card-1907": (at(23, 57, 41), at(0, 3, 12)),
        "card-2230": (at(0, 21, 3), at(0, 29, 50)),
        "card-1187": (at(0, 30, 11), at(0, 38, 27)),
        "card-1748": (at(23, 16, 40), at(23, 23, 55)),
    }

    def normal(card, n, min_gap=156):
        # n purchases, at least min_gap seconds apart, none over 140 EUR: at most 4 in
        # any 10 minutes and never above 1000 EUR, so an everyday card is never flagged
        lo_q, hi_q = None, None
        if card in quiet:
            lo_q = (quiet[card][0] - t0).total_seconds() - 11 * 60
            hi_q = (quiet[card][1] - t0).total_seconds() + 11 * 60
        while True:
            free = span - 1 - (n - 1) * min_gap
            pts = sorted(rnd.randrange(free) for _ in range(n))
            secs = [p + k * min_gap for k, p in enumerate(pts)]
            if lo_q is None or not any(lo_q <= x <= hi_q for x in secs):
                break
        for x in secs:
            m, c = merchants[rnd.randrange(len(merchants))]
            amt = Decimal(rnd.randrange(200, 14000)) / 100
            tx.append([card, t0 + timedelta(seconds=x), amt, m, c])

    for card in cards:
        if card in quiet:
            normal(card, 8)
        else:
            normal(card, rnd.randint(22, 25))

    # card-1422: card testing, six tiny online charges within four minutes
    for k, (m, s) in enumerate([(41, 5), (41, 48), (42, 31), (43, 2), (44, 19), (45, 7)]):
        tx.append(["card-1422", at(23, m, s), Decimal(["1.00", "1.99", "2.50", "1.00", "2.99", "1.49"][k]),
                   "WEBSHOP-8841 ONLINE", "CY"])
    # card-1907: two big electronics purchases six minutes apart, across midnight
    tx.append(["card-1907", at(23, 57, 41), Decimal("749.00"), "MediaMarkt Online", "DE"])
    tx.append(["card-1907", at(0, 3, 12), Decimal("689.99"), "Saturn Online", "DE"])
    # card-2230: five mid-sized charges abroad within nine minutes (both rules fire)
    for (m, s), a in zip([(21, 3), (23, 40), (25, 58), (27, 14), (29, 50)],
                         ["249.00", "319.50", "288.00", "275.25", "301.10"]):
        tx.append(["card-2230", at(0, m, s), Decimal(a), "Electronics Bazaar", "TR"])
    # card-1748: three luxury purchases in seven minutes; the third crosses 1000 EUR
    for (m, s), a in zip([(16, 40), (19, 8), (23, 55)], ["450.00", "380.00", "299.90"]):
        tx.append(["card-1748", at(23, m, s), Decimal(a), "Boutique Lumière", "FR"])
    # card-1187: exactly 1000.00 in four charges within ten minutes: NOT suspicious
    # (the rule is sum > 1000 and count >= 5)
    for (m, s), a in zip([(30, 11), (32, 45), (35, 2), (38, 27)],
                         ["400.00", "250.00", "200.00", "150.00"]):
        tx.append(["card-1187", at(0, m, s), Decimal(a), "Hotel Adlon", "DE"])

    tx.sort(key=lambda r: (r[1], r[0]))
    rows = []
    for n, (card, when, amt, m, c) in enumerate(tx):
        rows.append([880001 + n, card, ts(when), money(amt), m, c])
    write("card_fraud/transactions.csv",
          csv_text(["tx_id", "card_id", "ts", "amount", "merchant", "country"], rows))


if __name__ == "__main__":
    retail_star()
    customer_anonymize()
    web_logs()
    card_fraud()
    print("sample data written under", HERE)
