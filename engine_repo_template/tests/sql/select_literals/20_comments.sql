-- a leading comment
SELECT 1; /* a block ; comment */ SELECT 2 /* inline */ + 3;
SELECT 'a;b'; -- trailing ; comment
SELECT 4 -- no semicolon at the end
