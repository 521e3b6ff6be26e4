CREATE TABLE t(a);
INSERT INTO t VALUES (1), (1.0), ('1');
SELECT count(*) FROM t WHERE a = 1;
SELECT typeof(a) FROM t ORDER BY rowid;
SELECT 1 = 1.0, typeof(1.0 + 1), 3 / 2, 3.0 / 2;
