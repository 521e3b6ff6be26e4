CREATE TABLE t(g, v);
INSERT INTO t VALUES (NULL, 1), ('a', 2), (NULL, 3), ('a', 4), ('b', NULL);
SELECT g, count(*), sum(v) FROM t GROUP BY g ORDER BY g;
