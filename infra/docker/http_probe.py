"""Container health probe: exit 0 when ``GET <url>`` answers 2xx/3xx within 5 s, else 1 (with the reason).

Used by docker-compose.yml health checks of the Tickflow image (which has no curl):
``python3 /opt/tickflow/http_probe.py http://127.0.0.1:9101/metrics``.
"""

import sys
import urllib.error
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=5):
        pass
except (urllib.error.URLError, OSError) as exc:
    print(f"{sys.argv[1]}: {exc}", file=sys.stderr)
    sys.exit(1)
