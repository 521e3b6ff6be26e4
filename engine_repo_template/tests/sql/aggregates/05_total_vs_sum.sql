CREATE TABLE t(v);
SELECT sum(v), total(v), count(v) FROM t;
INSERT INTO t VALUES (1), (2);
SELECT sum(v), total(v) FROM t;
