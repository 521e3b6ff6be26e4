CREATE TABLE t(a INT, b VARCHAR(10), c DOUBLE, d FLOATING POINT, e BOOLEAN, f CHARINT, g STRING);
INSERT INTO t VALUES ('1', 2, '3', '4', '5', '6', '7');
SELECT typeof(a), typeof(b), typeof(c), typeof(d), typeof(e), typeof(f), typeof(g) FROM t;
