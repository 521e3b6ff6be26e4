CREATE TABLE t(v);
INSERT INTO t VALUES (1), ('1'), (1.0), (2), ('a');
SELECT typeof(v), count(*) FROM t GROUP BY v ORDER BY min(rowid);
