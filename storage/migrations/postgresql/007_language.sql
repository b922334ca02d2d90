-- PostgreSQL form of storage/migrations/007_language.sql.
-- 007: the language a user reads the bot in. `language` is their /settings choice (NULL: follow
-- the Telegram app); `telegram_language` is the app's last `language_code`, kept so a
-- notification (no update to read it from) is written in the same language as replies.
ALTER TABLE users ADD COLUMN language TEXT CHECK (language IN ('en', 'id', 'pt'));
ALTER TABLE users ADD COLUMN telegram_language TEXT;
