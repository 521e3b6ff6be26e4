CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, dept TEXT, salary INTEGER, manager INTEGER);
INSERT INTO emp VALUES
  (1, 'alice', 'eng', 120, NULL),
  (2, 'bob', 'eng', 100, 1),
  (3, 'carol', 'sales', 90, 1),
  (4, 'dave', 'sales', 85, 3),
  (5, 'erin', 'hr', 70, 1),
  (6, 'frank', 'eng', NULL, 2),
  (7, 'grace', NULL, 60, 5),
  (8, 'heidi', 'sales', 95, 3);
SELECT dept, count(*) FROM emp GROUP BY dept ORDER BY dept;
