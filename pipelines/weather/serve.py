#!/usr/bin/env python3
"""Serves the weather example's recorded responses, like Open-Meteo, on 127.0.0.1.

    python3 pipelines/weather/serve.py [PORT]        # default 8765
    etl run pipelines/weather.yaml --var api_base=http://127.0.0.1:8765 --date 2024-06-14

Answers GET /v1/forecast?latitude=... with pipelines/data/weather/<city>.json, whatever the
other parameters (the recordings cover 2024-06-01 to 2024-06-14).
"""

import http.server
import os
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "weather")
BY_LATITUDE = {"52.52": "berlin", "48.85": "paris", "40.42": "madrid"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        lat = urllib.parse.parse_qs(url.query).get("latitude", [""])[0]
        name = BY_LATITUDE.get(lat)
        if url.path != "/v1/forecast" or name is None:
            body = b'{"error": true, "reason": "no recording for this request"}'
            self.send_response(400)
        else:
            with open(os.path.join(DATA, f"{name}.json"), "rb") as f:
                body = f.read()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    print(f"serving recorded Open-Meteo responses on http://127.0.0.1:{port}")
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
