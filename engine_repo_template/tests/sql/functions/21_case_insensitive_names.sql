SELECT UPPER('a'), Length('abc'), ABS(-1), TypeOf(1);
