CREATE TABLE t(id INTEGER PRIMARY KEY, v);
INSERT INTO t VALUES (1, 'a'), (2, 'b');
UPDATE t SET v = 'B' WHERE id = 2;
-- @reopen
SELECT * FROM t ORDER BY id;
