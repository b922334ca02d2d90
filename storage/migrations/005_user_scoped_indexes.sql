-- 005: every per-user read is an index search (checked by tests/test_query_plans.py).
-- The risk screen reads a user's open positions by user, not by agent.
CREATE INDEX positions_user ON positions(user_id, status);

-- Most agents are roots (no parent): with statistics (ANALYZE / PRAGMA optimize) SQLite judged
-- the full index on parent_agent_id useless and scanned the whole table for "children of X".
-- Only children belong in it; `parent_agent_id = ?` implies NOT NULL, so lookups still use it.
DROP INDEX agents_parent;
CREATE INDEX agents_parent ON automaton_agents(parent_agent_id) WHERE parent_agent_id IS NOT NULL;
