CREATE TABLE t(i, r);
INSERT INTO t VALUES (1, 1.5), (2, 2.5), (3, 0.0);
SELECT sum(i), sum(r), avg(i), typeof(sum(i)), typeof(avg(i)), sum(i + r) FROM t;
