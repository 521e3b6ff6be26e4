CREATE TABLE t(a, b BLOB);
INSERT INTO t VALUES ('12', '12'), (12, 12), (1.5, 1.5);
SELECT a, typeof(a), b, typeof(b) FROM t ORDER BY rowid;
