"""The commands the CLI suggests ("Track with:", "Resume with:", ...), built in one
place so that a copied hint runs as the invocation that printed it did: in local mode
it carries `--local`, without which it would look for AWS."""

from __future__ import annotations

from petal.local import mode as local_mode


def petal(rest: str) -> str:
    """`petal REST`, with the global options of this invocation."""
    return f"petal --local {rest}" if local_mode.is_active() else f"petal {rest}"
