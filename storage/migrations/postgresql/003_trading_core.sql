-- PostgreSQL form of storage/migrations/003_trading_core.sql.
-- 003: the trading core's live state and the bars live paths traded on (parity replay).

-- Closed bars of the regular grid as a live path processed them, shared by every simulation and
-- agent on the same (token, timeframe).
CREATE TABLE market_bars (
    token_id         TEXT NOT NULL,
    interval_minutes BIGINT NOT NULL CHECK (interval_minutes > 0),
    time             BIGINT NOT NULL,       -- bar start, unix seconds
    open             DOUBLE PRECISION NOT NULL CHECK (open > 0),
    high             DOUBLE PRECISION NOT NULL CHECK (high > 0),
    low              DOUBLE PRECISION NOT NULL CHECK (low > 0),
    close            DOUBLE PRECISION NOT NULL CHECK (close > 0),
    volume           DOUBLE PRECISION NOT NULL CHECK (volume >= 0),
    PRIMARY KEY (token_id, interval_minutes, time)
);

-- Bar times of a trade (the core's decisions), for the parity replay.
ALTER TABLE trades ADD COLUMN entry_bar_time BIGINT;
ALTER TABLE trades ADD COLUMN exit_bar_time BIGINT;
ALTER TABLE positions ADD COLUMN entry_bar_time BIGINT;

-- One row per agent: its trading core's state on its current strategy (the open position itself
-- lives in `positions`). `since_time` is the first bar whose signals the agent traded on.
CREATE TABLE agent_core_state (
    agent_id         TEXT PRIMARY KEY REFERENCES automaton_agents(agent_id),
    strategy_key     TEXT NOT NULL,
    token_id         TEXT NOT NULL,
    interval_minutes BIGINT NOT NULL,
    since_time       BIGINT NOT NULL,
    state_json       TEXT NOT NULL DEFAULT '{}'
);
