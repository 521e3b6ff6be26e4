SELECT -(1 < 2), NOT (1 + 1), ~(1 = 1), -(CASE WHEN 1 THEN 3 END);
