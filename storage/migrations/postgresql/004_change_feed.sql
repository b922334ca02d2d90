-- PostgreSQL form of storage/migrations/004_change_feed.sql (BEFORE row triggers instead of SQLite's AFTER ones).
-- 004: a change feed for the agent loop's incremental tick.
--
-- Every insert or update of an agent stamps it with the next value of one counter row, so a reader
-- that has seen everything up to stamp S finds every later change with `change_seq > S` (index below).
-- SQLite serialises writers (BEGIN IMMEDIATE); here the stamp's UPDATE of the clock row takes that
-- row's lock and holds it to commit, so a second writer waits for the first to commit before it draws
-- its stamp: stamps grow in commit order across connections and processes too.
-- Opening and closing a position always updates its agent's locked balance, so the agent's stamp
-- covers its positions too.
CREATE TABLE change_clock (
    id  BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_clock(id, seq) VALUES (1, 0);

ALTER TABLE automaton_agents ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX agents_change_seq ON automaton_agents(change_seq);

-- Draws the next stamp into the row being written (a BEFORE trigger sets NEW directly, so no second
-- UPDATE of automaton_agents is needed as in SQLite's AFTER trigger).
CREATE FUNCTION agents_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO NEW.change_seq;
    RETURN NEW;
END
$$;

CREATE TRIGGER agents_stamp_insert BEFORE INSERT ON automaton_agents
    FOR EACH ROW EXECUTE FUNCTION agents_stamp();

-- The safety net: storage/ stamps its own UPDATEs (agents_repo.stamp, much cheaper); an UPDATE
-- that leaves change_seq as it was is stamped here. WHEN: an UPDATE that sets its own stamp is not stamped again.
CREATE TRIGGER agents_stamp_update BEFORE UPDATE ON automaton_agents
    FOR EACH ROW WHEN (NEW.change_seq = OLD.change_seq) EXECUTE FUNCTION agents_stamp();
