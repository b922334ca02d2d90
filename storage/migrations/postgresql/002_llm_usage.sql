-- PostgreSQL form of storage/migrations/002_llm_usage.sql.
-- 002: per-user daily LLM call counts, so the daily limit survives restarts and deploys.
CREATE TABLE llm_usage (
    user_id BIGINT NOT NULL REFERENCES users(user_id),
    day     TEXT NOT NULL,               -- UTC date, YYYY-MM-DD
    calls   BIGINT NOT NULL DEFAULT 0 CHECK (calls >= 0),
    PRIMARY KEY (user_id, day)
);
