VALUES (1, 'a'), (2, 'b');
SELECT * FROM (VALUES (3), (1), (2)) ORDER BY 1;
