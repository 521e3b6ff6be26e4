SELECT 1, 'two', 3.0, NULL, -5;
