"""Log lines as text and JSON: the work's fields, addresses masked, Message-IDs kept."""

from __future__ import annotations

import json
import logging

from bridge.logs import AddContext, JsonFormatter, TextFormatter, log_context


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("bridge.pipeline", logging.INFO, __file__, 1, message, None, None)
    AddContext().filter(record)
    return record


def test_text_lines_end_with_the_fields_and_mask_addresses() -> None:
    with log_context(email="<m1@customer.example>", ticket=7):
        line = TextFormatter(mask=True).format(_record("reply sent to alice.smith@customer.example"))
    assert line.endswith("reply sent to a***@customer.example [email=<m1@customer.example> ticket=7]")
    assert "alice.smith@" not in line


def test_json_lines_keep_the_fields_and_nest_no_context_outside_a_block() -> None:
    with log_context(effect="ack:<m1@x.example>"):
        inside = json.loads(JsonFormatter(mask=True).format(_record("to bob@x.example")))
    outside = json.loads(JsonFormatter(mask=False).format(_record("to bob@x.example")))
    assert inside["effect"] == "ack:<m1@x.example>" and inside["message"] == "to b***@x.example"
    assert "effect" not in outside and outside["message"] == "to bob@x.example"
