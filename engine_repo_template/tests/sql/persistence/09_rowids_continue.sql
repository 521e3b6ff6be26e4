CREATE TABLE t(x);
INSERT INTO t VALUES ('a'), ('b');
-- @reopen
INSERT INTO t VALUES ('c');
SELECT rowid, x FROM t ORDER BY rowid;
