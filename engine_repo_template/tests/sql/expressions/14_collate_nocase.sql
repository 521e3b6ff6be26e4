SELECT 'abc' = 'ABC', 'abc' = 'ABC' COLLATE NOCASE, 'a' < 'B' COLLATE NOCASE, 'abc ' = 'abc' COLLATE RTRIM;
