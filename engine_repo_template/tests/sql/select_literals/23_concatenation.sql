SELECT 'a' || 'b', 'x' || 1 || 2.5, 1 || 2, 'n' || NULL;
