"""The signed reference our mail carries in its body, read back from a reply that quotes it."""

from bridge.mail.thread_ids import body_ref, ticket_from_body

SECRET = b"test-secret"


def test_round_trip_and_quoted() -> None:
    ref = body_ref(42, SECRET)
    assert ticket_from_body(f"Thanks!\n\n> Hello Alice,\n> {ref}\n", SECRET) == 42
    hidden = f'<div style="display:none">{ref}</div>'
    assert ticket_from_body(f"<blockquote>{hidden}</blockquote>", SECRET) == 42


def test_forged_or_foreign_markers_name_nothing() -> None:
    ref = body_ref(42, SECRET)
    forged = ref.replace("42.", "43.")
    assert ticket_from_body(forged, SECRET) is None
    assert ticket_from_body(ref, b"another-secret") is None
    assert ticket_from_body("{#ref:42.zzzz#}", SECRET) is None


def test_the_first_signed_marker_wins() -> None:
    newest, older = body_ref(7, SECRET), body_ref(3, SECRET)
    assert ticket_from_body(f"reply\n> {newest}\n>> {older}", SECRET) == 7
    assert ticket_from_body(f"{body_ref(5, SECRET).replace('5.', '6.')} {older}", SECRET) == 3


def test_bounded_on_a_huge_body() -> None:
    assert ticket_from_body("{#ref:1." * 200_000, SECRET) is None
