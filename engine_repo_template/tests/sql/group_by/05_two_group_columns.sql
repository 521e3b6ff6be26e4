CREATE TABLE s(region, product, amount);
INSERT INTO s VALUES ('n', 'x', 1), ('n', 'x', 2), ('n', 'y', 3), ('s', 'x', 4), ('s', 'y', 5), ('s', 'y', 6);
SELECT region, product, sum(amount), count(*) FROM s GROUP BY region, product ORDER BY region, product;
