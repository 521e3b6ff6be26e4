CREATE TABLE t(id INTEGER PRIMARY KEY, v);
INSERT INTO t(v) VALUES (3), ('abc'), (2.5), (NULL), (x'01'), ('10'), (1), ('B');
SELECT id, v FROM t ORDER BY v, id;
