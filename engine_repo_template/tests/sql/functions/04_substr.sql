SELECT substr('hello', 2), substr('hello', 2, 3), substr('hello', -3), substr('hello', 0, 2), substr('hello', 10), substr('hello', -3, 2);
