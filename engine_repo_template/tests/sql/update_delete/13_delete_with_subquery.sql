CREATE TABLE t(id INTEGER PRIMARY KEY, a, b);
INSERT INTO t VALUES (1, 10, 'x'), (2, 20, 'y'), (3, 30, 'z'), (4, 40, 'w');
DELETE FROM t WHERE a > (SELECT avg(a) FROM t);
SELECT id FROM t ORDER BY id;
