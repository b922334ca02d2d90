-- 001: users, agents, the money ledger, positions and trades, spawn decisions,
-- strategy bots and their conversations, backtests, simulations, signals.
-- Money columns are INTEGER micro-USDC (1 USDC = 1,000,000). Times are ISO-8601 UTC text.

CREATE TABLE users (
    user_id         INTEGER PRIMARY KEY,            -- Telegram user id
    username        TEXT,
    first_name      TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    blocked         INTEGER NOT NULL DEFAULT 0,     -- the user blocked the bot: skip notifications
    notify_signals  TEXT NOT NULL DEFAULT 'on' CHECK (notify_signals IN ('on', 'silent', 'off')),
    notify_trades   TEXT NOT NULL DEFAULT 'on' CHECK (notify_trades IN ('on', 'silent', 'off')),
    notify_spawns   TEXT NOT NULL DEFAULT 'on' CHECK (notify_spawns IN ('on', 'silent', 'off')),
    notify_risk     TEXT NOT NULL DEFAULT 'on' CHECK (notify_risk IN ('on', 'silent', 'off')),
    selected_bot_id INTEGER
);

CREATE TABLE bots (
    bot_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(user_id),
    name          TEXT NOT NULL,
    strategy_json TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX bots_user ON bots(user_id);

CREATE TABLE bot_conversations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id     INTEGER NOT NULL REFERENCES bots(bot_id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(user_id),
    role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content    TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX bot_conversations_bot ON bot_conversations(bot_id, id);

CREATE TABLE automaton_agents (
    agent_id         TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(user_id),
    parent_agent_id  TEXT REFERENCES automaton_agents(agent_id),
    generation       INTEGER NOT NULL CHECK (generation >= 1),
    isolated_balance INTEGER NOT NULL DEFAULT 0 CHECK (isolated_balance >= 0),
    locked_balance   INTEGER NOT NULL DEFAULT 0 CHECK (locked_balance >= 0),
    peak_balance     INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'dead', 'closed')),
    status_reason    TEXT,
    spawn_reason     TEXT,
    strategy_bot_id  INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL,
    strategy_json    TEXT,
    remote_agent_id  TEXT UNIQUE,
    remote_balance   INTEGER,
    remote_status    TEXT,
    remote_synced_at TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (locked_balance <= isolated_balance),
    CHECK ((generation = 1) = (parent_agent_id IS NULL))
);
CREATE INDEX agents_user ON automaton_agents(user_id);
CREATE INDEX agents_parent ON automaton_agents(parent_agent_id);
CREATE INDEX agents_status ON automaton_agents(status);
-- Invariant 3: at most one live generation-1 agent per user.
CREATE UNIQUE INDEX agents_one_live_root ON automaton_agents(user_id)
    WHERE generation = 1 AND status <> 'closed';

CREATE TABLE ledger_entries (
    entry_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        TEXT NOT NULL REFERENCES automaton_agents(agent_id),
    user_id         INTEGER NOT NULL REFERENCES users(user_id),
    kind            TEXT NOT NULL CHECK (kind IN
                        ('deposit', 'withdraw', 'profit', 'loss', 'spawn_out', 'spawn_in', 'sync_adjust')),
    amount          INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL CHECK (balance_after >= 0),
    ref             TEXT,
    idempotency_key TEXT UNIQUE,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX ledger_agent ON ledger_entries(agent_id, entry_id);
CREATE INDEX ledger_user ON ledger_entries(user_id);

-- One row per idempotent money operation, scoped by user so one user's key never
-- shadows another's (invariant 5).
CREATE TABLE money_operations (
    user_id         INTEGER NOT NULL REFERENCES users(user_id),
    idempotency_key TEXT NOT NULL,
    kind            TEXT NOT NULL,
    result_json     TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (user_id, idempotency_key)
);

CREATE TABLE positions (
    position_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id     TEXT NOT NULL REFERENCES automaton_agents(agent_id),
    user_id      INTEGER NOT NULL REFERENCES users(user_id),
    token_id     TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    size         REAL NOT NULL CHECK (size > 0),    -- token units (not money)
    entry_price  REAL NOT NULL CHECK (entry_price > 0),
    cost         INTEGER NOT NULL CHECK (cost > 0), -- micro-USDC locked, fees included
    stop_loss    REAL,
    take_profit  REAL,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    open_key     TEXT UNIQUE,
    opened_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    closed_at    TEXT
);
CREATE INDEX positions_agent ON positions(agent_id, status);

CREATE TABLE trades (
    trade_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id     TEXT REFERENCES automaton_agents(agent_id),
    simulation_id INTEGER,
    user_id      INTEGER NOT NULL REFERENCES users(user_id),
    position_id  INTEGER,
    token_id     TEXT NOT NULL,
    symbol       TEXT NOT NULL,
    size         REAL NOT NULL,
    entry_price  REAL NOT NULL,
    exit_price   REAL NOT NULL,
    cost         INTEGER NOT NULL,
    proceeds     INTEGER NOT NULL,
    pnl          INTEGER NOT NULL,
    exit_reason  TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    closed_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX trades_agent ON trades(agent_id, trade_id);
CREATE INDEX trades_user ON trades(user_id);

CREATE TABLE spawn_decisions (
    decision_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        TEXT NOT NULL REFERENCES automaton_agents(agent_id),
    user_id         INTEGER NOT NULL REFERENCES users(user_id),
    spawn           INTEGER NOT NULL,
    amount          INTEGER NOT NULL DEFAULT 0,
    reason          TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('llm', 'rule', 'remote', 'user')),
    child_agent_id  TEXT REFERENCES automaton_agents(agent_id),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX spawn_decisions_agent ON spawn_decisions(agent_id);

CREATE TABLE backtests (
    backtest_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(user_id),
    bot_id        INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL,
    token_id      TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    timeframe     TEXT NOT NULL,
    days          INTEGER NOT NULL,
    strategy_json TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
    metrics_json  TEXT,
    trades_json   TEXT,
    error         TEXT,
    demo          INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at   TEXT
);
CREATE INDEX backtests_user ON backtests(user_id, backtest_id);

CREATE TABLE simulations (
    simulation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(user_id),
    bot_id        INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL,
    token_id      TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    timeframe     TEXT NOT NULL,
    strategy_json TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped', 'finished', 'failed')),
    state_json    TEXT NOT NULL DEFAULT '{}',
    started_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ends_at       TEXT NOT NULL,
    stopped_at    TEXT,
    last_poll_at  TEXT
);
CREATE INDEX simulations_user ON simulations(user_id, status);
-- One running simulation per strategy bot.
CREATE UNIQUE INDEX simulations_one_running ON simulations(bot_id) WHERE status = 'running';

CREATE TABLE signals (
    signal_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(user_id),
    bot_id        INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL,
    backtest_id   INTEGER REFERENCES backtests(backtest_id) ON DELETE CASCADE,
    simulation_id INTEGER REFERENCES simulations(simulation_id) ON DELETE CASCADE,
    agent_id      TEXT REFERENCES automaton_agents(agent_id),
    token_id      TEXT NOT NULL,
    side          TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    price         REAL NOT NULL,
    reason        TEXT NOT NULL,
    bar_time      INTEGER,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX signals_user ON signals(user_id, signal_id);
CREATE INDEX signals_backtest ON signals(backtest_id);
CREATE INDEX signals_simulation ON signals(simulation_id);

-- Every agent with its place in its user's tree (root, depth, path for ordering).
CREATE VIEW user_ai_hierarchy AS
WITH RECURSIVE tree(agent_id, root_agent_id, depth, path) AS (
    SELECT agent_id, agent_id, 0, agent_id
    FROM automaton_agents WHERE parent_agent_id IS NULL
    UNION ALL
    SELECT a.agent_id, t.root_agent_id, t.depth + 1, t.path || '/' || a.agent_id
    FROM automaton_agents a JOIN tree t ON a.parent_agent_id = t.agent_id
)
SELECT a.user_id, a.agent_id, a.parent_agent_id, a.generation, t.root_agent_id, t.depth, t.path,
       a.isolated_balance, a.locked_balance, a.status, a.created_at
FROM tree t JOIN automaton_agents a ON a.agent_id = t.agent_id;
