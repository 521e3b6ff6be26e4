CREATE TABLE t(a, b);
INSERT INTO t VALUES (1 + 2, 'a' || 'b'), (abs(-4), upper('x'));
SELECT * FROM t ORDER BY a;
