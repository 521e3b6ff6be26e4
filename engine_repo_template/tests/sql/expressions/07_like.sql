SELECT 'hello' LIKE 'h%', 'hello' LIKE 'H%', 'hello' LIKE '_ello', 'hello' LIKE 'h_l%', 'abc' NOT LIKE '%d%';
SELECT 'a%c' LIKE 'a\%c' ESCAPE '\', 'abc' LIKE 'a\%c' ESCAPE '\';
