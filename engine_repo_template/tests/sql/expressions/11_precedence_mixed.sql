SELECT 1 + 2 = 3, 1 < 2 = 1, NOT 1 = 2, 1 OR 0 AND 0, (1 OR 0) AND 0, 2 + 3 || 'x', 1 = 1 AND 2 = 2;
