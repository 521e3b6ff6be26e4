CREATE INDEX i ON missing(a);
CREATE TABLE t(a);
CREATE INDEX i ON t(nosuch);
SELECT 'ok';
