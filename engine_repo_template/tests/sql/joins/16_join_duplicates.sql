CREATE TABLE a(k, v);
CREATE TABLE b(k, w);
INSERT INTO a VALUES (1, 'a'), (1, 'b'), (2, 'c');
INSERT INTO b VALUES (1, 'x'), (1, 'y'), (3, 'z');
SELECT v, w FROM a JOIN b ON a.k = b.k ORDER BY v, w;
