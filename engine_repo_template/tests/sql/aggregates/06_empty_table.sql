CREATE TABLE t(v);
SELECT count(*), max(v), min(v), avg(v) FROM t;
