"""The attachment limits: which files of an email go on its ticket and which are left out, and why."""

from __future__ import annotations

from bridge.config import TicketsConfig
from bridge.models import Attachment
from bridge.pipeline.left_out import shown_size, within_limits

MB = 1 << 20


def _file(name: str, size: int) -> Attachment:
    return Attachment(name, "application/pdf", bytes(size))


def test_defaults_are_25_mb_a_file_and_40_mb_an_email() -> None:
    cfg = TicketsConfig()
    assert (cfg.max_attachment_bytes, cfg.max_total_attachment_bytes) == (25 * MB, 40 * MB)


def test_files_over_the_limits_are_left_out_in_order_and_smaller_ones_still_fit() -> None:
    cfg = TicketsConfig(max_attachment_bytes=10 * MB, max_total_attachment_bytes=25 * MB)
    files = [_file("a", 10 * MB), _file("huge", 10 * MB + 1), _file("b", 10 * MB), _file("c", 6 * MB),
             _file("d", 5 * MB)]
    kept, left = within_limits(files, cfg)
    assert [a.filename for a in kept] == ["a", "b", "d"]  # d still fits after c did not
    assert [(item.attachment.filename, item.reason) for item in left] == [
        ("huge", "larger than 10 MB, the limit per file"),
        ("c", "the files of one email may be 25 MB together at most"),
    ]


def test_an_email_within_the_limits_keeps_everything() -> None:
    files = [_file("a", 3), _file("b", 4)]
    assert within_limits(files, TicketsConfig()) == (files, [])


def test_shown_size() -> None:
    assert [shown_size(n) for n in (25 * MB, int(31.44 * MB), 8004, 0)] == ["25 MB", "31.4 MB", "8 KB", "0 KB"]
