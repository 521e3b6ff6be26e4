CREATE TABLE t(a, b);
INSERT INTO t VALUES (1, 'one'), (2, 'two');
-- @reopen
SELECT * FROM t ORDER BY a;
