-- 008: state every replica shares, so any process can answer any update (issue 15).
-- `app_state`: values the processes agree on (the webhook's secret token, made by the first).
-- `conversation_state`: a user's open prompt (a withdrawal waiting for its confirmation, a bot
-- being renamed), once kept in one process's memory; JSON, with an expiry.
-- `outbox_messages.owner`: the replica that queued a message sends it; a dead replica's pending
-- messages are adopted by a live one (NULL: a single process, or rows from before).
CREATE TABLE app_state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE conversation_state (
    user_id    INTEGER NOT NULL REFERENCES users(user_id),
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

ALTER TABLE outbox_messages ADD COLUMN owner TEXT;
CREATE INDEX outbox_pending_owner ON outbox_messages(owner) WHERE state = 'pending';
