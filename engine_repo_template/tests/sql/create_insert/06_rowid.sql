CREATE TABLE t(x);
INSERT INTO t VALUES ('a'), ('b'), ('c');
SELECT rowid, x FROM t ORDER BY rowid;
SELECT _rowid_, oid FROM t ORDER BY 1;
