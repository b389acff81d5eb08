"""seapig suite tests that fail against synthperf only through a private helper name or an internal
attribute, with the reason (issue 15 acceptance). Keys: pytest node ids inside the suite tree."""
from __future__ import annotations

KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "git": {},
    "pypi": {},
}
