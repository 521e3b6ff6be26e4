CREATE TABLE t(a TEXT);
INSERT INTO t VALUES (12), (1.5), ('x'), (NULL), (1e20);
SELECT a, typeof(a) FROM t ORDER BY rowid;
