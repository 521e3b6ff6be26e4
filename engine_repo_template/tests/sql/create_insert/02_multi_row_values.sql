CREATE TABLE t(a, b);
INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT * FROM t ORDER BY a;
