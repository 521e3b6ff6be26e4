CREATE TABLE t(a INTEGER);
INSERT INTO t VALUES ('12'), ('12.0'), ('1.5'), ('abc'), (3.0), (NULL), (' 7');
SELECT a, typeof(a) FROM t ORDER BY rowid;
