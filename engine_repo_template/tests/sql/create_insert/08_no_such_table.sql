CREATE TABLE present(a);
INSERT INTO present VALUES (1);
SELECT * FROM missing;
INSERT INTO missing VALUES (1);
SELECT * FROM present;
