SELECT 'a' < 'b', 'B' < 'a', 'abc' = 'abc', 'abc' < 'abd', '' < 'a', 'abc' > 'ab';
