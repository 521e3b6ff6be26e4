CREATE TABLE a(k, v);
CREATE TABLE b(k, w);
INSERT INTO a VALUES (1, 'a1'), (NULL, 'anull');
INSERT INTO b VALUES (1, 'b1'), (NULL, 'bnull');
SELECT v, w FROM a JOIN b ON a.k = b.k ORDER BY v;
SELECT v, w FROM a LEFT JOIN b ON a.k = b.k ORDER BY v;
