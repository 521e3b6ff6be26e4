SELECT coalesce(NULL, NULL, NULL, NULL, 'last'), coalesce(NULL, 2, 3), ifnull(NULL, NULL);
