SELECT coalesce(NULL, NULL, 3), coalesce(NULL, 'a'), coalesce(1, 2), ifnull(NULL, 5), nullif(3, 3), nullif(3, 4);
