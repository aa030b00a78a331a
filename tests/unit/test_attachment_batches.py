"""Attachments go to Odoo in batches of bounded size, so no single request encoding holds the loop."""

from bridge.models import Attachment
from bridge.odoo.tickets import _batches


def _sizes(groups):
    return [[a.size for a in group] for group in groups]


def test_small_attachments_share_one_call_and_large_ones_go_alone():
    files = [Attachment(f"f{n}", "application/pdf", b"x" * size) for n, size in enumerate((10, 20, 200, 60, 40, 5))]
    assert _sizes(_batches(files, 100)) == [[10, 20], [200], [60, 40], [5]]
    assert _batches([], 100) == []
    assert _sizes(_batches(files[:2], 100)) == [[10, 20]]
