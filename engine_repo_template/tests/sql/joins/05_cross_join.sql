CREATE TABLE a(x);
CREATE TABLE b(y);
INSERT INTO a VALUES (1), (2);
INSERT INTO b VALUES ('p'), ('q'), ('r');
SELECT x, y FROM a CROSS JOIN b ORDER BY x, y;
SELECT count(*) FROM a, b;
