"""ASCII-only case folding for names compared in security checks (domains, authserv-ids, addresses).

``str.lower()`` folds Unicode too: KELVIN SIGN (U+212A) becomes "k", so a look-alike name would
compare equal to ours. Only A-Z are folded here.
"""

from __future__ import annotations

import string

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lower-cased and every other character left as it is."""
    return text.translate(_ASCII_LOWER)
