-- PostgreSQL form of storage/migrations/009_change_feed_xids.sql.
-- 009: the change feed without a hot row. Migration 004 stamped every agent write with the next
-- value of one counter row; every writer then queued on that row's lock, and under SERIALIZABLE
-- a concurrent second writer of it failed and retried (4 replicas x 4 writers: one account
-- creation failed 30 times in a row). A stamp is now the writing transaction's id, which needs no
-- shared row; a reader reads the changes up to its snapshot's xmin (every transaction with a lower
-- id has ended) and next time re-reads from that xmin, so a transaction that was still running is
-- read once it commits (storage/bars_repo.loop_changes, storage/agents_repo.stamp).
CREATE OR REPLACE FUNCTION agents_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;

-- Stamps drawn from the counter before now are all below the ids to come, unless the counter ran
-- ahead of the transaction ids: those rows start from 0 (a full read sees them anyway).
UPDATE automaton_agents SET change_seq = 0 WHERE change_seq > pg_current_xact_id()::text::bigint;
