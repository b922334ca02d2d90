"""Entry point: `python main.py` (Telegram long polling) or `python main.py --console`.

The composition root: settings are read once here, everything else is built from them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from bot.settings import Settings, SettingsError, load_settings

log = logging.getLogger("main")
CONSOLE_USER_ID = 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Telegram trading bot with autonomous per-user AI agents")
    parser.add_argument("--console", action="store_true",
                        help="run in the terminal instead of Telegram (no token needed)")
    return parser.parse_args(argv)


def _secrets(settings: Settings) -> list[str]:
    return [s.get_secret_value() for s in (settings.telegram_bot_token, settings.ave_api_key,
                                           settings.automaton_api_key, settings.anthropic_api_key)]


def run_telegram(settings: Settings) -> int:
    """Long polling into the durable inbox until SIGINT/SIGTERM; returns the exit code
    (non-zero when polling cannot go on, e.g. a token Telegram keeps rejecting)."""
    from bot.app import build_application
    from bot.lifecycle import serve

    return asyncio.run(serve(build_application(settings)))


def run_console(settings: Settings) -> None:
    from bot.app import build_application
    from bot.console import run_console as console_loop

    admins = settings.admin_user_ids | {CONSOLE_USER_ID}
    settings = settings.model_copy(update={"admin_user_ids": admins})

    def build(request: object, updates_request: object):
        return build_application(settings, request=request, get_updates_request=updates_request,  # type: ignore[arg-type]
                                 console=True)

    asyncio.run(console_loop(build, user_id=CONSOLE_USER_ID))


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    from bot.logging_setup import configure_logging

    level = settings.log_level
    if args.console and "LOG_LEVEL" not in os.environ:
        level = "WARNING"  # keep the terminal readable; LOG_LEVEL=INFO brings the logs back
    configure_logging(level, settings.log_format, _secrets(settings),
                      stream=sys.stderr if args.console else sys.stdout)
    if not args.console and not settings.telegram_bot_token.get_secret_value():
        print("Invalid configuration: TELEGRAM_BOT_TOKEN: required to run on Telegram "
              "(or run `python main.py --console`)", file=sys.stderr)
        return 2
    from storage import MigrationError

    try:
        if args.console:
            run_console(settings)
            return 0
        return run_telegram(settings)
    except MigrationError as exc:  # one clear line, not a traceback: the database needs a person
        log.error("database problem: %s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
