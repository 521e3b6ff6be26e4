SELECT abs(-5), abs(3.5), abs(NULL), abs(0), abs(-2.25), abs('-4');
