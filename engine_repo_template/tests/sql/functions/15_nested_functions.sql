SELECT upper(substr('hello world', 7)), length(replace('aaa', 'a', 'bc')), abs(round(-2.7)), lower(trim('  HI  ')) || '!';
