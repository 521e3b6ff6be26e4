CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT);
INSERT INTO t(s) VALUES ('banana'), ('Apple'), ('cherry'), ('apple2'), ('Banana3');
SELECT s FROM t ORDER BY s;
SELECT s FROM t ORDER BY s COLLATE NOCASE, id;
