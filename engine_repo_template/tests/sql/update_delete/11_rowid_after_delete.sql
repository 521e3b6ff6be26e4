CREATE TABLE t(x);
INSERT INTO t VALUES ('a'), ('b'), ('c');
DELETE FROM t WHERE x = 'c';
INSERT INTO t VALUES ('d');
DELETE FROM t WHERE x = 'a';
INSERT INTO t VALUES ('e');
SELECT rowid, x FROM t ORDER BY rowid;
