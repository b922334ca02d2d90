"""The console channel: the real PTB `Application` with the Bot API played in-process.

`ConsoleBotApi` (api.py) is a local stand-in for Telegram's servers: typed lines become
updates (updates.py), and what the bot sends is printed (render.py, terminal.py). It applies
the Bot API's limits and HTML rules (checks.py), so a bug that would be a `BadRequest` on
Telegram is one here too. `ConsoleRequest` is the `BaseRequest` seam PTB talks to;
`run_console` wires both into an application built by the caller and runs it until `quit`,
`exit` or end of input (channel.py).
"""

from __future__ import annotations

from bot.console.api import ConsoleBotApi
from bot.console.channel import ConsoleRequest, run_console

__all__ = ["ConsoleBotApi", "ConsoleRequest", "run_console"]
