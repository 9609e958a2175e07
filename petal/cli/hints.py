"""The commands the CLI suggests ("Track with:", "Resume with:", ...), built in one
place so that a copied hint runs as the invocation that printed it did: in local mode
it carries `--local`, without which it would look for AWS."""

from __future__ import annotations

import re
from typing import Final

from petal.cli.commands import COMMANDS
from petal.local import mode as local_mode

# `petal COMMAND` in text written without knowing how petal was invoked: a step's
# failure cause (written by a Lambda function), a refusal from the core library.
_SUGGESTION: Final = re.compile(
    r"(?<![\w/-])petal (?=(?:"
    + "|".join(
        name for entry in COMMANDS if entry.name != "local" for name in (entry.name, *entry.aliases)
    )
    + r")\b)"
)


def petal(rest: str) -> str:
    """`petal REST`, with the global options of this invocation."""
    return f"petal --local {rest}" if local_mode.is_active() else f"petal {rest}"


def in_text(text: str) -> str:
    """`text` with every petal command it suggests given this invocation's global
    options."""
    return _SUGGESTION.sub("petal --local ", text) if local_mode.is_active() else text
