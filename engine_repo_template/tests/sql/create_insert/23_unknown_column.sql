CREATE TABLE t(a);
INSERT INTO t(nosuch) VALUES (1);
SELECT nosuch FROM t;
SELECT 'ok';
