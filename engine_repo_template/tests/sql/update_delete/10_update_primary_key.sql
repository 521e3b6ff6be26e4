CREATE TABLE t(id INTEGER PRIMARY KEY, a, b);
INSERT INTO t VALUES (1, 10, 'x'), (2, 20, 'y'), (3, 30, 'z'), (4, 40, 'w');
UPDATE t SET id = 10 WHERE id = 1;
UPDATE t SET id = 2 WHERE id = 3;
SELECT id, a FROM t ORDER BY id;
