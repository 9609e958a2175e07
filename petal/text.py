"""Text that came from outside petal, made safe to store and to print on a terminal.

A builder's output (marker lines, the log tail in a failure's cause), a registry's
documents and a seed's fields are written by whoever controls them. Printed as they
are, their control characters drive the reader's terminal: `ESC[2J` clears it, `\r`
overwrites a line petal printed with other words, OSC 8 hides a link behind harmless
text, a C1 `\x9b` is a CSI of its own, and a right-to-left override shows text in
another order than it is stored (so `curl x | sh` can read as something else).
`terminal_safe` removes escape sequences whole and replaces every other control and
bidi formatting character with U+FFFD, which shows that something was there.
"""

from __future__ import annotations

import re
from typing import Final

REPLACEMENT: Final = "\ufffd"

# Escape sequences, removed whole so their parameters (an OSC 8 link's URL, a title)
# do not remain as stray text: OSC (ESC ] or C1 0x9D, up to BEL or ST, or unterminated
# to the end), DCS/SOS/PM/APC strings (ESC P X ^ _ or C1 0x90 0x98 0x9E 0x9F, up to ST),
# CSI (ESC [ or C1 0x9B, parameters, intermediates, a final byte), and any other
# two-character ESC sequence (ESC 7, ESC c, ESC ( B ...).
_ESCAPE_SEQUENCE: Final = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c|$)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
)
# What remains dangerous one character at a time: C0 controls but tab and newline
# (BEL, BS, CR, a lone ESC ...), DEL, C1 controls, the bidi embeddings, overrides and
# isolates with the marks that steer them, and the Unicode line and paragraph
# separators (a line break some terminals and editors honour).
_UNSAFE_CHARACTER: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
_LINE_BREAKS: Final = re.compile("[\t\n]")


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """`text` with no terminal control left in it. Newlines and tabs stay (a log tail
    is several lines), unless `one_line`: a field printed inside one line of petal's
    output (a spec, a table cell) must not start a line petal did not print, so there
    they become spaces."""
    # A CR before a newline is a Windows line end, not an overwrite: drop it quietly.
    cleaned = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n"))
    cleaned = _UNSAFE_CHARACTER.sub(REPLACEMENT, cleaned)
    if one_line:
        cleaned = _LINE_BREAKS.sub(" ", cleaned)
    return cleaned
