CREATE TABLE t(a NUMERIC);
INSERT INTO t VALUES ('1e3'), ('3.0'), ('3.5'), ('x'), (4), ('0x10');
SELECT a, typeof(a) FROM t ORDER BY rowid;
