SELECT instr('hello', 'l'), instr('hello', 'z'), instr('', 'a'), instr('abcabc', 'ca'), instr(NULL, 'a');
