-- 009: nothing changes on SQLite: one writer at a time, so the change feed's counter row
-- (migration 004) costs nothing here. The PostgreSQL form stamps agents with transaction ids.
SELECT 1;
