"""docs/operations.md: its queries read log lines the code still writes."""

from __future__ import annotations

import re

from .conftest import ROOT

DOC = ROOT / "docs" / "operations.md"
# The logger format strings whose output the Kusto queries in the guide parse.
# If one changes, change the query that parses it in the same commit.
QUERIED_LOG_FORMATS = (
    '"job %s created: %d IDs, requestedBy=%r, reason=%r, incident=%r"',
    '"job %s: %s (deleted=%d, notFound=%d, forbidden=%d, failed=%d)"',
    '"%s %s %s %.0f ms", method',
    '"%s %s %s %s %.0f ms target=%s"',
    '"%s %s failed after %.0f ms: %s"',
    '"404 batch of %d: %d gone, %d sent again (target=%s)"',
    '"every caller of %s waits %.1fs"',
    '"%d IDs will be sent again in %.0fs: %s"',
    '"cleanup %s for tenant %s: %d candidates of %d listed (%s), job %s"',
)


def _library_source() -> str:
    text = "\n".join(
        path.read_text(encoding="utf-8") for path in sorted(ROOT.glob("shared/*.py"))
    )
    return re.sub(r"\s+", " ", text)


def test_every_log_line_the_queries_parse_is_still_written() -> None:
    source = _library_source()

    for fragment in QUERIED_LOG_FORMATS:
        assert fragment in source, fragment


def test_relative_links_point_at_files_in_the_repository() -> None:
    text = DOC.read_text(encoding="utf-8")
    targets = re.findall(r"\]\((\.\./[^)#]+)\)", text)

    assert targets
    for target in targets:
        assert (DOC.parent / target).resolve().exists(), target
