CREATE TABLE a(k, va);
CREATE TABLE b(k, vb);
INSERT INTO a VALUES (1, 'a1'), (2, 'a2');
INSERT INTO b VALUES (2, 'b2'), (1, 'b1'), (5, 'b5');
SELECT * FROM a NATURAL JOIN b ORDER BY k;
