SELECT count(*);
SELECT max(3), min('a'), sum(2);
