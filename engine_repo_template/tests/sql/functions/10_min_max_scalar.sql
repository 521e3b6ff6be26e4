SELECT max(1, 2, 3), min(1, 2, 3), max('a', 'b'), min(1, NULL), max(1, 'a'), min(2.5, 3);
