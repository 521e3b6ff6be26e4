SELECT 'hello';
SELECT 'it''s';
SELECT '';
SELECT 'a|b';
