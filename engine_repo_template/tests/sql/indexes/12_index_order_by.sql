CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT);
CREATE INDEX t_k ON t(k);
INSERT INTO t(k) VALUES ('m'), ('c'), ('x'), ('a'), ('q');
SELECT k FROM t ORDER BY k;
SELECT k FROM t WHERE k > 'c' ORDER BY k DESC;
