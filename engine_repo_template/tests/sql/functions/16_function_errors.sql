SELECT abs(-1), length('ab');
SELECT abs(1, 2);
SELECT nosuchfunc(1);
SELECT length();
SELECT substr('a');
SELECT 'after';
