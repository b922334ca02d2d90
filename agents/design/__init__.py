"""The strategy design room: how a chat message becomes a stored, validated strategy.

* `strategy_bots`: each user's named bots (at most 3), their strategy and designer conversation;
* `designer`: one chat turn -> a new or edited strategy (AI crew when configured, else the parser);
* `parser/`: the deterministic parser, a table of small phrase rules;
* `crew/`: the CrewAI designer/validator/explainer crew and the handling of its output;
* `daemon`: running the blocking crew in a daemon thread from async code;
* `notes`: `Note`, a code with params: what this room tells the user, worded only by the bot
  (`bot.design_text`, `bot.messages.design`).
"""
