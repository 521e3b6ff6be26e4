CREATE TABLE t(a, b);
CREATE INDEX t_b ON t(b);
CREATE TABLE u(x);
SELECT type, name, tbl_name FROM sqlite_master ORDER BY name;
DROP INDEX t_b;
SELECT name FROM sqlite_schema ORDER BY name;
