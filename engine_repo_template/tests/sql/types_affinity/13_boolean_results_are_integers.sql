SELECT typeof(1 < 2), typeof(NOT 0), typeof('a' LIKE 'a'), typeof(1 IN (1));
