CREATE TABLE a(k, va);
CREATE TABLE b(k, vb);
INSERT INTO a VALUES (1, 'a1'), (2, 'a2'), (3, 'a3');
INSERT INTO b VALUES (2, 'b2'), (3, 'b3'), (4, 'b4');
SELECT k, va, vb FROM a JOIN b USING (k) ORDER BY k;
