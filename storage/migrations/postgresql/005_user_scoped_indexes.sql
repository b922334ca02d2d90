-- PostgreSQL form of storage/migrations/005_user_scoped_indexes.sql.
-- 005: every per-user read is an index search (checked by tests/test_query_plans.py).
-- The risk screen reads a user's open positions by user, not by agent.
CREATE INDEX positions_user ON positions(user_id, status);

-- Most agents are roots (no parent): only children belong in the parent index;
-- `parent_agent_id = ?` implies NOT NULL, so lookups still use it.
DROP INDEX agents_parent;
CREATE INDEX agents_parent ON automaton_agents(parent_agent_id) WHERE parent_agent_id IS NOT NULL;
