SELECT 1 AS a, 2 b, 'x' AS "quoted name";
SELECT 3 AS [bracket], 4 AS `tick`;
