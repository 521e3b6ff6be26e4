CREATE TABLE t(a INTEGER, b TEXT, c);
INSERT INTO t VALUES (1, '1', '1');
SELECT a = '1', b = 1, c = 1, a = b, c = '1' FROM t;
