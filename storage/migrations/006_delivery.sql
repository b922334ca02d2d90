-- 006: the durable inbox (updates stored before Telegram's offset is confirmed) and outbox
-- (every reply, edit, photo and notification, delivered by one sender).
CREATE TABLE inbox_updates (
    update_id   INTEGER PRIMARY KEY,       -- Telegram's update_id: a re-delivered update is stored once
    user_id     INTEGER,                   -- the update's effective user; NULL when it has none
    payload     TEXT NOT NULL,             -- the update's JSON as Telegram sent it
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'throttled', 'abandoned')),
    recoveries  INTEGER NOT NULL DEFAULT 0,  -- starts that found it unfinished (a crash loop gives up)
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    done_at     TEXT
);
CREATE INDEX inbox_pending ON inbox_updates(update_id) WHERE state = 'pending';
CREATE INDEX inbox_done_at ON inbox_updates(done_at) WHERE state <> 'pending';

CREATE TABLE outbox_messages (
    outbox_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key      TEXT UNIQUE,           -- e.g. 'u<update_id>:<n>': a re-processed update queues nothing twice
    chat_id         INTEGER NOT NULL,
    method          TEXT NOT NULL,         -- sendMessage | sendPhoto | editMessageText | editMessageCaption
    params          TEXT NOT NULL,         -- the Bot API parameters as JSON (without the photo bytes)
    file            BLOB,                  -- sendPhoto's image
    priority        INTEGER NOT NULL,      -- 0: the answer to a user's own action, 1: a notification
    edit_of         INTEGER REFERENCES outbox_messages(outbox_id),  -- the queued message an edit changes
    expires_at      TEXT,                  -- NULL: never expires
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed', 'expired', 'unknown', 'digested')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    sent_message_id INTEGER,               -- Telegram's message_id, for later edits
    error           TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    done_at         TEXT
);
CREATE INDEX outbox_pending ON outbox_messages(outbox_id) WHERE state = 'pending';
CREATE INDEX outbox_done_at ON outbox_messages(done_at) WHERE state <> 'pending';
