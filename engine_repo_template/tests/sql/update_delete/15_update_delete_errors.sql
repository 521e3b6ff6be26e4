CREATE TABLE t(id INTEGER PRIMARY KEY, a, b);
INSERT INTO t VALUES (1, 10, 'x'), (2, 20, 'y'), (3, 30, 'z'), (4, 40, 'w');
UPDATE t SET nosuch = 1;
UPDATE missing SET a = 1;
DELETE FROM missing;
DELETE FROM t WHERE nosuch = 1;
SELECT count(*) FROM t;
