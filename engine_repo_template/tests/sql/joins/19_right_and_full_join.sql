CREATE TABLE a(k, v);
CREATE TABLE b(k, w);
INSERT INTO a VALUES (1, 'a1'), (2, 'a2');
INSERT INTO b VALUES (2, 'b2'), (3, 'b3');
SELECT a.k, v, b.k, w FROM a RIGHT JOIN b ON a.k = b.k ORDER BY b.k;
SELECT a.k, v, b.k, w FROM a FULL JOIN b ON a.k = b.k ORDER BY coalesce(a.k, b.k);
