SELECT replace('hello world', 'o', '0'), replace('aaa', 'a', 'bb'), replace('abc', '', 'x'), replace('abc', 'z', 'y');
