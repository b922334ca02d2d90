-- index agents_change_seq
CREATE INDEX agents_change_seq ON automaton_agents(change_seq);

-- index agents_one_live_root
CREATE UNIQUE INDEX agents_one_live_root ON automaton_agents(user_id) WHERE generation = 1 AND status <> 'closed';

-- index agents_parent
CREATE INDEX agents_parent ON automaton_agents(parent_agent_id) WHERE parent_agent_id IS NOT NULL;

-- index agents_status
CREATE INDEX agents_status ON automaton_agents(status);

-- index agents_user
CREATE INDEX agents_user ON automaton_agents(user_id);

-- index backtests_user
CREATE INDEX backtests_user ON backtests(user_id, backtest_id);

-- index bot_conversations_bot
CREATE INDEX bot_conversations_bot ON bot_conversations(bot_id, id);

-- index bots_user
CREATE INDEX bots_user ON bots(user_id);

-- index inbox_done_at
CREATE INDEX inbox_done_at ON inbox_updates(done_at) WHERE state <> 'pending';

-- index inbox_pending
CREATE INDEX inbox_pending ON inbox_updates(update_id) WHERE state = 'pending';

-- index ledger_agent
CREATE INDEX ledger_agent ON ledger_entries(agent_id, entry_id);

-- index ledger_user
CREATE INDEX ledger_user ON ledger_entries(user_id);

-- index outbox_done_at
CREATE INDEX outbox_done_at ON outbox_messages(done_at) WHERE state <> 'pending';

-- index outbox_pending
CREATE INDEX outbox_pending ON outbox_messages(outbox_id) WHERE state = 'pending';

-- index outbox_pending_owner
CREATE INDEX outbox_pending_owner ON outbox_messages(owner) WHERE state = 'pending';

-- index positions_agent
CREATE INDEX positions_agent ON positions(agent_id, status);

-- index positions_user
CREATE INDEX positions_user ON positions(user_id, status);

-- index signals_backtest
CREATE INDEX signals_backtest ON signals(backtest_id);

-- index signals_simulation
CREATE INDEX signals_simulation ON signals(simulation_id);

-- index signals_user
CREATE INDEX signals_user ON signals(user_id, signal_id);

-- index simulations_one_running
CREATE UNIQUE INDEX simulations_one_running ON simulations(bot_id) WHERE status = 'running';

-- index simulations_user
CREATE INDEX simulations_user ON simulations(user_id, status);

-- index spawn_decisions_agent
CREATE INDEX spawn_decisions_agent ON spawn_decisions(agent_id);

-- index trades_agent
CREATE INDEX trades_agent ON trades(agent_id, trade_id);

-- index trades_user
CREATE INDEX trades_user ON trades(user_id);

-- table agent_core_state
CREATE TABLE agent_core_state ( agent_id TEXT PRIMARY KEY REFERENCES automaton_agents(agent_id), strategy_key TEXT NOT NULL, token_id TEXT NOT NULL, interval_minutes INTEGER NOT NULL, since_time INTEGER NOT NULL, state_json TEXT NOT NULL DEFAULT '{}' );

-- table app_state
CREATE TABLE app_state ( name TEXT PRIMARY KEY, value TEXT NOT NULL );

-- table automaton_agents
CREATE TABLE automaton_agents ( agent_id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(user_id), parent_agent_id TEXT REFERENCES automaton_agents(agent_id), generation INTEGER NOT NULL CHECK (generation >= 1), isolated_balance INTEGER NOT NULL DEFAULT 0 CHECK (isolated_balance >= 0), locked_balance INTEGER NOT NULL DEFAULT 0 CHECK (locked_balance >= 0), peak_balance INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'dead', 'closed')), status_reason TEXT, spawn_reason TEXT, strategy_bot_id INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL, strategy_json TEXT, remote_agent_id TEXT UNIQUE, remote_balance INTEGER, remote_status TEXT, remote_synced_at TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), change_seq INTEGER NOT NULL DEFAULT 0, CHECK (locked_balance <= isolated_balance), CHECK ((generation = 1) = (parent_agent_id IS NULL)) );

-- table backtests
CREATE TABLE backtests ( backtest_id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(user_id), bot_id INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL, token_id TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, days INTEGER NOT NULL, strategy_json TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')), metrics_json TEXT, trades_json TEXT, error TEXT, demo INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), finished_at TEXT );

-- table bot_conversations
CREATE TABLE bot_conversations ( id INTEGER PRIMARY KEY AUTOINCREMENT, bot_id INTEGER NOT NULL REFERENCES bots(bot_id) ON DELETE CASCADE, user_id INTEGER NOT NULL REFERENCES users(user_id), role TEXT NOT NULL CHECK (role IN ('user', 'assistant')), content TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) );

-- table bots
CREATE TABLE bots ( bot_id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(user_id), name TEXT NOT NULL, strategy_json TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) );

-- table change_clock
CREATE TABLE change_clock ( id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL );

-- table conversation_state
CREATE TABLE conversation_state ( user_id INTEGER NOT NULL REFERENCES users(user_id), name TEXT NOT NULL, value TEXT NOT NULL, expires_at TEXT NOT NULL, PRIMARY KEY (user_id, name) );

-- table inbox_updates
CREATE TABLE inbox_updates ( update_id INTEGER PRIMARY KEY, -- Telegram's update_id: a re-delivered update is stored once user_id INTEGER, -- the update's effective user; NULL when it has none payload TEXT NOT NULL, -- the update's JSON as Telegram sent it state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'throttled', 'abandoned')), recoveries INTEGER NOT NULL DEFAULT 0, -- starts that found it unfinished (a crash loop gives up) received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), done_at TEXT );

-- table ledger_entries
CREATE TABLE ledger_entries ( entry_id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL REFERENCES automaton_agents(agent_id), user_id INTEGER NOT NULL REFERENCES users(user_id), kind TEXT NOT NULL CHECK (kind IN ('deposit', 'withdraw', 'profit', 'loss', 'spawn_out', 'spawn_in', 'sync_adjust')), amount INTEGER NOT NULL, balance_after INTEGER NOT NULL CHECK (balance_after >= 0), ref TEXT, idempotency_key TEXT UNIQUE, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) );

-- table llm_usage
CREATE TABLE llm_usage ( user_id INTEGER NOT NULL REFERENCES users(user_id), day TEXT NOT NULL, -- UTC date, YYYY-MM-DD calls INTEGER NOT NULL DEFAULT 0 CHECK (calls >= 0), PRIMARY KEY (user_id, day) );

-- table market_bars
CREATE TABLE market_bars ( token_id TEXT NOT NULL, interval_minutes INTEGER NOT NULL CHECK (interval_minutes > 0), time INTEGER NOT NULL, -- bar start, unix seconds open REAL NOT NULL CHECK (open > 0), high REAL NOT NULL CHECK (high > 0), low REAL NOT NULL CHECK (low > 0), close REAL NOT NULL CHECK (close > 0), volume REAL NOT NULL CHECK (volume >= 0), PRIMARY KEY (token_id, interval_minutes, time) );

-- table money_operations
CREATE TABLE money_operations ( user_id INTEGER NOT NULL REFERENCES users(user_id), idempotency_key TEXT NOT NULL, kind TEXT NOT NULL, result_json TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), PRIMARY KEY (user_id, idempotency_key) );

-- table outbox_messages
CREATE TABLE outbox_messages ( outbox_id INTEGER PRIMARY KEY AUTOINCREMENT, dedupe_key TEXT UNIQUE, -- e.g. 'u<update_id>:<n>': a re-processed update queues nothing twice chat_id INTEGER NOT NULL, method TEXT NOT NULL, -- sendMessage | sendPhoto | editMessageText | editMessageCaption params TEXT NOT NULL, -- the Bot API parameters as JSON (without the photo bytes) file BLOB, -- sendPhoto's image priority INTEGER NOT NULL, -- 0: the answer to a user's own action, 1: a notification edit_of INTEGER REFERENCES outbox_messages(outbox_id), -- the queued message an edit changes expires_at TEXT, -- NULL: never expires state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'expired', 'unknown', 'digested')), attempts INTEGER NOT NULL DEFAULT 0, sent_message_id INTEGER, -- Telegram's message_id, for later edits error TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), done_at TEXT , owner TEXT);

-- table positions
CREATE TABLE positions ( position_id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL REFERENCES automaton_agents(agent_id), user_id INTEGER NOT NULL REFERENCES users(user_id), token_id TEXT NOT NULL, symbol TEXT NOT NULL, size REAL NOT NULL CHECK (size > 0), -- token units (not money) entry_price REAL NOT NULL CHECK (entry_price > 0), cost INTEGER NOT NULL CHECK (cost > 0), -- micro-USDC locked, fees included stop_loss REAL, take_profit REAL, status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')), open_key TEXT UNIQUE, opened_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), closed_at TEXT , entry_bar_time INTEGER);

-- table schema_migrations
CREATE TABLE schema_migrations ( version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));

-- table signals
CREATE TABLE signals ( signal_id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(user_id), bot_id INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL, backtest_id INTEGER REFERENCES backtests(backtest_id) ON DELETE CASCADE, simulation_id INTEGER REFERENCES simulations(simulation_id) ON DELETE CASCADE, agent_id TEXT REFERENCES automaton_agents(agent_id), token_id TEXT NOT NULL, side TEXT NOT NULL CHECK (side IN ('buy', 'sell')), price REAL NOT NULL, reason TEXT NOT NULL, bar_time INTEGER, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) );

-- table simulations
CREATE TABLE simulations ( simulation_id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(user_id), bot_id INTEGER REFERENCES bots(bot_id) ON DELETE SET NULL, token_id TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL, strategy_json TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped', 'finished', 'failed')), state_json TEXT NOT NULL DEFAULT '{}', started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), ends_at TEXT NOT NULL, stopped_at TEXT, last_poll_at TEXT );

-- table spawn_decisions
CREATE TABLE spawn_decisions ( decision_id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL REFERENCES automaton_agents(agent_id), user_id INTEGER NOT NULL REFERENCES users(user_id), spawn INTEGER NOT NULL, amount INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL, source TEXT NOT NULL CHECK (source IN ('llm', 'rule', 'remote', 'user')), child_agent_id TEXT REFERENCES automaton_agents(agent_id), created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) );

-- table trades
CREATE TABLE trades ( trade_id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT REFERENCES automaton_agents(agent_id), simulation_id INTEGER, user_id INTEGER NOT NULL REFERENCES users(user_id), position_id INTEGER, token_id TEXT NOT NULL, symbol TEXT NOT NULL, size REAL NOT NULL, entry_price REAL NOT NULL, exit_price REAL NOT NULL, cost INTEGER NOT NULL, proceeds INTEGER NOT NULL, pnl INTEGER NOT NULL, exit_reason TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) , entry_bar_time INTEGER, exit_bar_time INTEGER);

-- table users
CREATE TABLE users ( user_id INTEGER PRIMARY KEY, -- Telegram user id username TEXT, first_name TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), blocked INTEGER NOT NULL DEFAULT 0, -- the user blocked the bot: skip notifications notify_signals TEXT NOT NULL DEFAULT 'on' CHECK (notify_signals IN ('on', 'silent', 'off')), notify_trades TEXT NOT NULL DEFAULT 'on' CHECK (notify_trades IN ('on', 'silent', 'off')), notify_spawns TEXT NOT NULL DEFAULT 'on' CHECK (notify_spawns IN ('on', 'silent', 'off')), notify_risk TEXT NOT NULL DEFAULT 'on' CHECK (notify_risk IN ('on', 'silent', 'off')), selected_bot_id INTEGER , language TEXT CHECK (language IN ('en', 'id', 'pt')), telegram_language TEXT);

-- trigger agents_stamp_insert
CREATE TRIGGER agents_stamp_insert AFTER INSERT ON automaton_agents BEGIN UPDATE change_clock SET seq = seq + 1 WHERE id = 1; UPDATE automaton_agents SET change_seq = (SELECT seq FROM change_clock WHERE id = 1) WHERE agent_id = NEW.agent_id; END;

-- trigger agents_stamp_update
CREATE TRIGGER agents_stamp_update AFTER UPDATE ON automaton_agents WHEN NEW.change_seq = OLD.change_seq BEGIN UPDATE change_clock SET seq = seq + 1 WHERE id = 1; UPDATE automaton_agents SET change_seq = (SELECT seq FROM change_clock WHERE id = 1) WHERE agent_id = NEW.agent_id; END;

-- view user_ai_hierarchy
CREATE VIEW user_ai_hierarchy AS WITH RECURSIVE tree(agent_id, root_agent_id, depth, path) AS ( SELECT agent_id, agent_id, 0, agent_id FROM automaton_agents WHERE parent_agent_id IS NULL UNION ALL SELECT a.agent_id, t.root_agent_id, t.depth + 1, t.path || '/' || a.agent_id FROM automaton_agents a JOIN tree t ON a.parent_agent_id = t.agent_id ) SELECT a.user_id, a.agent_id, a.parent_agent_id, a.generation, t.root_agent_id, t.depth, t.path, a.isolated_balance, a.locked_balance, a.status, a.created_at FROM tree t JOIN automaton_agents a ON a.agent_id = t.agent_id;

