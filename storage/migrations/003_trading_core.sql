-- 003: the trading core's live state and the bars live paths traded on (parity replay).

-- Closed bars of the regular grid as a live path processed them, shared by every simulation and
-- agent on the same (token, timeframe).
CREATE TABLE market_bars (
    token_id         TEXT NOT NULL,
    interval_minutes INTEGER NOT NULL CHECK (interval_minutes > 0),
    time             INTEGER NOT NULL,       -- bar start, unix seconds
    open             REAL NOT NULL CHECK (open > 0),
    high             REAL NOT NULL CHECK (high > 0),
    low              REAL NOT NULL CHECK (low > 0),
    close            REAL NOT NULL CHECK (close > 0),
    volume           REAL NOT NULL CHECK (volume >= 0),
    PRIMARY KEY (token_id, interval_minutes, time)
);

-- Bar times of a trade (the core's decisions), for the parity replay.
ALTER TABLE trades ADD COLUMN entry_bar_time INTEGER;
ALTER TABLE trades ADD COLUMN exit_bar_time INTEGER;
ALTER TABLE positions ADD COLUMN entry_bar_time INTEGER;

-- One row per agent: its trading core's state on its current strategy (the open position itself
-- lives in `positions`). `since_time` is the first bar whose signals the agent traded on.
CREATE TABLE agent_core_state (
    agent_id         TEXT PRIMARY KEY REFERENCES automaton_agents(agent_id),
    strategy_key     TEXT NOT NULL,
    token_id         TEXT NOT NULL,
    interval_minutes INTEGER NOT NULL,
    since_time       INTEGER NOT NULL,
    state_json       TEXT NOT NULL DEFAULT '{}'
);
