CREATE TABLE t(a, b);
INSERT INTO t VALUES (1, 10), (2, 20);
SELECT b, a, a * 2, b - a FROM t ORDER BY a;
