select 1 as x;
SeLeCt 2 AS y;
SELECT null, NuLl;
