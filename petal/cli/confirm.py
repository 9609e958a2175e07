"""Asking before petal spends money or deletes: yes from --yes, else from a person at a
terminal; never from a script that did not say so."""

from __future__ import annotations

import sys

from petal.errors import InvalidInput


def confirmed(question: str, *, yes: bool, flag: str = "--yes") -> bool:
    """True with `yes`; else the answer typed at the terminal (anything but y/yes is
    no). Without a terminal on stdin, InvalidInput naming `flag`: a script that did not
    pass it must not hang on a prompt, nor be taken to agree."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise InvalidInput(
            f"{question.rstrip('?')}: no terminal to confirm on; pass {flag} to go ahead"
        )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")
