CREATE TABLE t(v);
INSERT INTO t VALUES (1), (NULL), (3), (NULL);
SELECT count(*), count(v), sum(v), avg(v), min(v), max(v) FROM t;
DELETE FROM t WHERE v IS NOT NULL;
SELECT count(*), count(v), sum(v), total(v), avg(v), max(v) FROM t;
