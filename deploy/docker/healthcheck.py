"""Container health check: is the exporter's web front answering?

Exit status 0 when an HTTP response comes back from the URL in
SMTP_REPLY_EXPORTER_HEALTHCHECK_URL (default: the landing page on the default
port), 1 when nothing answers or the server fails (5xx). A 401 from basic auth
or a 429 from the rate limit still proves the process serves, so they count as
healthy. For https URLs the certificate is not verified: this checks liveness
on the container's own loopback, not the server's identity.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:10925/"
TIMEOUT_SECONDS = 4


def check(url: str) -> str | None:
    """None when healthy, else what is wrong."""
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=context) as response:
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except (urllib.error.URLError, OSError) as err:
        return f"{url}: {getattr(err, 'reason', err)}"
    return f"{url}: HTTP {status}" if status >= 500 else None


def main() -> int:
    problem = check(os.environ.get("SMTP_REPLY_EXPORTER_HEALTHCHECK_URL", DEFAULT_URL))
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
