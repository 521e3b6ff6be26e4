SELECT 1;
-- @reopen
SELECT * FROM t;
CREATE TABLE t(a);
-- @reopen
SELECT count(*) FROM t;
