-- 004: a change feed for the agent loop's incremental tick.
--
-- Every insert or update of an agent stamps it with the next value of one counter row. Writers
-- are serialised (BEGIN IMMEDIATE), so stamps grow in commit order: a reader that has seen
-- everything up to stamp S finds every later change with `change_seq > S` (index below).
-- Opening and closing a position always updates its agent's locked balance, so the agent's stamp
-- covers its positions too.
CREATE TABLE change_clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO change_clock(id, seq) VALUES (1, 0);

ALTER TABLE automaton_agents ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX agents_change_seq ON automaton_agents(change_seq);

CREATE TRIGGER agents_stamp_insert AFTER INSERT ON automaton_agents
BEGIN
    UPDATE change_clock SET seq = seq + 1 WHERE id = 1;
    UPDATE automaton_agents SET change_seq = (SELECT seq FROM change_clock WHERE id = 1)
     WHERE agent_id = NEW.agent_id;
END;

-- The safety net: storage/ stamps its own UPDATEs (agents_repo.stamp, much cheaper); an UPDATE
-- that leaves change_seq as it was is stamped here. WHEN: the stamp's own UPDATE must not stamp again.
CREATE TRIGGER agents_stamp_update AFTER UPDATE ON automaton_agents
WHEN NEW.change_seq = OLD.change_seq
BEGIN
    UPDATE change_clock SET seq = seq + 1 WHERE id = 1;
    UPDATE automaton_agents SET change_seq = (SELECT seq FROM change_clock WHERE id = 1)
     WHERE agent_id = NEW.agent_id;
END;
