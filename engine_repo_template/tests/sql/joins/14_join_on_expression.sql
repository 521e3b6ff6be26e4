CREATE TABLE a(x);
CREATE TABLE b(y);
INSERT INTO a VALUES (1), (2), (3);
INSERT INTO b VALUES (2), (3), (4);
SELECT x, y FROM a JOIN b ON a.x + 1 = b.y ORDER BY x;
SELECT x, y FROM a JOIN b ON a.x < b.y ORDER BY x, y;
