CREATE TABLE t(a, b, c);
CREATE INDEX t_ab ON t(a, b);
INSERT INTO t VALUES (1, 1, 'p'), (1, 2, 'q'), (2, 1, 'r'), (2, 2, 's'), (1, 3, 't');
SELECT c FROM t WHERE a = 1 AND b >= 2 ORDER BY b;
SELECT c FROM t WHERE a = 2 ORDER BY b DESC;
