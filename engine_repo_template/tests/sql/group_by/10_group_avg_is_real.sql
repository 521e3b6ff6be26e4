CREATE TABLE t(g, v INTEGER);
INSERT INTO t VALUES ('a', 1), ('a', 2), ('b', 4), ('b', 4);
SELECT g, avg(v), typeof(avg(v)), sum(v) FROM t GROUP BY g ORDER BY g;
