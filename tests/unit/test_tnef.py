"""winmail.dat is unpacked into the files and text Outlook packed into it; a damaged or
dangerous one stays attached as it came, with a note, and never stops the email."""

from __future__ import annotations

import struct
import time
from email import message_from_bytes
from pathlib import Path

from bridge.mail.parse import parse_email
from bridge.mail.tnef import is_tnef, unpack

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"


def _stream(fixture: str) -> bytes:
    msg = message_from_bytes((MAIL / f"{fixture}.eml").read_bytes())
    return next(p.get_payload(decode=True) for p in msg.walk() if p.get_content_type() == "application/ms-tnef")


def test_two_files_come_out_with_their_names_and_bytes() -> None:
    email = parse_email((MAIL / "tnef-two-files.eml").read_bytes())
    assert [(a.filename, a.size) for a in email.attachments] == [("AUTHORS", 244), ("README", 893)]
    assert email.attachments[0].payload.strip().startswith(b"Authors of tnef")
    assert b"TNEF is a program for unpacking" in email.attachments[1].payload
    assert email.text.strip() == "The two files are attached."
    assert not email.defects


def test_a_body_only_in_winmail_dat_is_the_text() -> None:
    email = parse_email((MAIL / "tnef-body-only.eml").read_bytes())
    assert email.text.startswith("THE BILL OF RIGHTS\nAmendments 1-10 of the Constitution")
    assert email.attachments == ()  # nothing else was in it: no winmail.dat left to puzzle over


def test_a_cut_off_stream_stays_attached_with_a_note() -> None:
    email = parse_email((MAIL / "tnef-broken.eml").read_bytes())
    assert [(a.filename, a.content_type, a.size) for a in email.attachments] == [
        ("winmail.dat", "application/ms-tnef", 700)]
    assert email.attachments[0].payload == _stream("tnef-broken")
    assert email.defects == ("winmail.dat kept as it came: it is cut off after 700 bytes: the file is damaged",)


def test_a_checksum_mismatch_keeps_it_as_it_came() -> None:
    data = bytearray(_stream("tnef-two-files"))
    data[data.index(b"Authors of tnef")] ^= 0x20  # one byte of a file changed in transit
    result = unpack(bytes(data))
    assert (result.files, result.kept) == ([], "a checksum does not match: the file is damaged")


def test_garbage_and_other_streams_are_kept() -> None:
    assert unpack(b"not tnef at all").kept == "not a TNEF stream"
    header = struct.pack("<IH", 0x223E9F78, 1)
    assert unpack(header).kept == "it holds no files and no text"


def test_a_stream_of_countless_tiny_objects_is_refused_before_it_is_read() -> None:
    """tnefparse copies the rest of the stream for each object: 2 million 11-byte objects would
    keep it busy for hours; the scan sees the cost and keeps the file as it came."""
    tiny = struct.pack("<BHHI", 1, 0x8004, 1, 0) + b"\x00\x00"
    data = struct.pack("<IH", 0x223E9F78, 1) + tiny * 2_000_000
    started = time.perf_counter()
    assert unpack(data).kept == "it has too many parts to unpack safely"
    assert time.perf_counter() - started < 2


def test_tnef_is_recognised_by_type_or_by_its_name() -> None:
    assert is_tnef("application/ms-tnef", "")
    assert is_tnef("application/vnd.ms-tnef", "x.dat")
    assert is_tnef("application/octet-stream", "WINMAIL.DAT")
    assert not is_tnef("application/octet-stream", "data.bin")
