CREATE TABLE t(v);
INSERT INTO t VALUES (3), ('abc'), (2.5), (NULL), ('10');
SELECT min(v), max(v), count(v) FROM t;
