CREATE TABLE t(g, v);
INSERT INTO t VALUES ('a', 'x');
INSERT INTO t VALUES ('b', 'y');
INSERT INTO t VALUES ('a', 'z');
SELECT g, count(*), max(v), min(v) FROM t GROUP BY g ORDER BY g;
