SELECT 3 IN (1, 2, 3), 4 IN (1, 2, 3), 4 NOT IN (1, 2, 3), 'a' IN ('a', 'b'), 2 IN (2.0);
