CREATE TABLE a(id, x);
CREATE TABLE b(id, y);
INSERT INTO a VALUES (1, 'a1'), (2, 'a2');
INSERT INTO b VALUES (2, 'b2'), (1, 'b1');
SELECT * FROM a JOIN b ON a.id = b.id ORDER BY a.id;
SELECT a.*, b.y FROM a, b WHERE a.id = b.id ORDER BY a.id;
