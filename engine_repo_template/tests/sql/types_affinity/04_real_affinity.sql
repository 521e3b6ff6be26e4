CREATE TABLE t(a REAL);
INSERT INTO t VALUES (1), ('2'), ('2.5'), ('abc'), (NULL);
SELECT a, typeof(a) FROM t ORDER BY rowid;
