CREATE TABLE t(i INTEGER, r REAL, s TEXT);
-- @reopen
INSERT INTO t VALUES ('5', '2', 3);
SELECT typeof(i), typeof(r), typeof(s), i, r, s FROM t;
