"""Notification throughput at Telegram's flood limit, measured against that limit in the same run.

The real outbox and sender (bot.delivery) on a temp SQLite file deliver notifications to the
loopback Bot API fake (tests/fakes/telegram_api.py) configured with Telegram's limits: 30
messages/s in a sliding second over all chats and 1 message/s per chat (a 429 with retry_after
beyond either). Three runs, each ending with a count of what the fake received:

* steady: 900 notifications to 300 chats queued at once, the sender at its shipped 30/s;
* overdriven: the same, the sender configured at 45/s, so the fake answers 429s and the sender
  must wait them out;
* outage: 300 notifications queued while the fake answers 502 for 5 s, then served.

The floor is the physical one: at 30 messages/s, N messages need N/30 s. `ratio` is the
sustained rate over 30/s (1.0 = as fast as Telegram allows). `lost` = notifications queued
minus those the fake received (digested ones count by their content); `dup` = received twice.

Run: `python benchmarks/notify_throughput.py`. Ends with one `RESULT key=value ...` line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram.ext import ExtBot

from bot.delivery.outbox import NOTIFY, Outbox
from bot.delivery.sender import Sender
from bot.http_request import AiohttpRequest
from storage import open_database
from storage.outbox_repo import OutboxRepo
from tests.fakes.telegram_api import TelegramFake

TELEGRAM_RATE = 30.0
MARK = re.compile(r"#n(\d+)#")


async def _blocked(_: int) -> None:
    return None


async def one_run(label: str, *, chats: int, per_chat: int, rate: float, outage: float = 0.0) -> dict[str, float]:
    fake = TelegramFake(per_chat_limit=1, per_chat_window=1.0, global_limit=int(TELEGRAM_RATE), global_window=1.0)
    fake.start()
    for uid in range(1, chats + 1):
        fake.add_chat(uid)
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        bot = ExtBot(fake.token, base_url=f"{fake.base_url}/bot",
                     request=AiohttpRequest(connection_pool_size=16, read_timeout=60))
        await bot.initialize()
        sender = Sender(bot, OutboxRepo(db), on_blocked=_blocked, global_rate=rate, chat_rate=1.0, chat_burst=1)
        outbox = Outbox(OutboxRepo(db), sender.add, defaults={"parse_mode": "HTML"})
        await sender.start()
        if outage:
            fake.start_outage("502", duration=outage)
        total = chats * per_chat
        rows = [outbox.message(1 + i % chats, f"🟢 <b>Bought TOK</b> #n{i}#", priority=NOTIFY, ttl=3600)
                for i in range(total)]
        start = time.monotonic()
        await outbox.add(rows)
        await sender.wait_idle()
        elapsed = time.monotonic() - start
        await sender.stop()
        await bot.shutdown()
        await db.close()
    received: list[int] = []
    calls = fake.sent("sendMessage")
    for call in calls:
        received += [int(n) for n in MARK.findall(str(call.params.get("text", "")))]
    rejected = sum(1 for e in fake.errors if e.status == 429)
    fake.stop()
    serving = elapsed - outage
    figures = {"elapsed_s": round(elapsed, 2), "messages": len(calls), "notifications": total,
               "sustained_msgs_per_s": round(len(calls) / serving, 1) if serving > 0 else 0.0,
               "floor_s": round(len(calls) / TELEGRAM_RATE, 2),
               "lost": total - len(set(received)), "dup": len(received) - len(set(received)), "rejected_429": rejected}
    figures["ratio"] = round(figures["sustained_msgs_per_s"] / TELEGRAM_RATE, 2)
    print(f"{label:>10}: " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    return figures


async def main() -> None:
    # PTB logs every 502 page it cannot parse as JSON at ERROR; the sender reports the outage itself.
    logging.getLogger("telegram.request.BaseRequest").setLevel(logging.CRITICAL)
    steady = await one_run("steady", chats=300, per_chat=3, rate=TELEGRAM_RATE)
    over = await one_run("overdriven", chats=300, per_chat=3, rate=45.0)
    outage = await one_run("outage", chats=100, per_chat=3, rate=TELEGRAM_RATE, outage=5.0)
    lost = steady["lost"] + over["lost"] + outage["lost"]
    dup = steady["dup"] + over["dup"] + outage["dup"]
    print(f"RESULT sustained_msgs_per_s={steady['sustained_msgs_per_s']} ratio={steady['ratio']} "
          f"overdriven_msgs_per_s={over['sustained_msgs_per_s']} overdriven_429={over['rejected_429']} "
          f"outage_msgs_per_s={outage['sustained_msgs_per_s']} lost={lost} dup={dup}")


if __name__ == "__main__":
    asyncio.run(main())
