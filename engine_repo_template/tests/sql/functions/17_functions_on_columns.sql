CREATE TABLE t(name TEXT);
INSERT INTO t VALUES ('Ann'), ('bob'), ('Catherine');
SELECT name, length(name), upper(name), substr(name, 1, 2) FROM t ORDER BY name;
