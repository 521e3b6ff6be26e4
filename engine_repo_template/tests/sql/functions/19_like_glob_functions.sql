SELECT like('a%', 'abc'), like('b%', 'abc'), glob('a*', 'abc'), glob('A*', 'abc');
